"""SQLite writers queue for their turn (study/writer_lock.py) instead of polling: threads
of a process and separate processes are served in arrival order, a killed writer does not
block the queue, and reads of the participant flow never wait for a writer. (The latency
this buys under 50 writers is measured by bench/bench_store_load.py, not here.)"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from study.build import build_study
from study.session import StudyRunner
from study.store import answers
from study.writer_lock import SLOTS, FifoLock, TurnTimeout, writer_lock
from study_helpers import make_saliency_setup

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("queue")
    spec = make_saliency_setup(tmp, n_images=12, datasets=("birds",), pool_size=10, items_per_version=3,
                               versions=2, attention={"count": 1, "max_failures": 5})
    return build_study(spec, tmp / "studies" / "queue-study")


def _wait_until(condition, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.002)


def test_fifo_lock_hands_over_in_arrival_order_and_times_out():
    lock, order = FifoLock(), []
    lock.acquire(1)
    lock.acquire(1)                       # re-entrant in the owning thread
    lock.release()

    def waiter(n):
        lock.acquire(30)
        order.append(n)
        lock.release()

    threads = []
    for n in range(12):
        threads.append(threading.Thread(target=waiter, args=(n,)))
        threads[-1].start()
        _wait_until(lambda n=n: len(lock._waiters) == n + 1, "the waiter to queue")
    gave_up = []

    def impatient():
        try:
            lock.acquire(0.05)
        except TurnTimeout as exc:
            gave_up.append(exc)

    t = threading.Thread(target=impatient)
    t.start()
    t.join(30)
    assert gave_up                        # ... and left the queue as it was:
    assert len(lock._waiters) == 12
    lock.release()
    [t.join(30) for t in threads]
    assert order == list(range(12))


def test_answers_of_queued_threads_commit_in_arrival_order(study_dir, tmp_path):
    runner = StudyRunner.open(study_dir, str(tmp_path / "answers.sqlite"))
    people = [runner.start() for _ in range(10)]
    items = [runner.next_item(p.participant_id) for p in people]
    lock = writer_lock(str(tmp_path / "answers.sqlite"))
    release = threading.Event()

    def hold():
        with runner.store.transaction():
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    _wait_until(lambda: lock.fifo._owner is not None, "the holder's turn")
    threads = []
    for n, (p, item) in enumerate(zip(people, items)):
        value = runner.key[item.item_id].get("expected", runner.study.option_values[0])
        threads.append(threading.Thread(target=runner.record_answer, args=(p.participant_id, item.item_id, value, 5)))
        threads[-1].start()
        _wait_until(lambda n=n: len(lock.fifo._waiters) == n + 1, "the answer to queue")
    release.set()
    [t.join(30) for t in threads + [holder]]
    with runner.store.reading() as conn:
        stored = [r.participant_id for r in conn.execute(select(answers.c.participant_id).order_by(answers.c.answer_id))]
    assert stored == [p.participant_id for p in people]


def test_reads_do_not_wait_for_a_writer(study_dir, tmp_path):
    runner = StudyRunner.open(study_dir, str(tmp_path / "answers.sqlite"))
    p = runner.start()
    release, seen = threading.Event(), []

    def hold():
        with runner.store.transaction():
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    lock = writer_lock(str(tmp_path / "answers.sqlite"))
    _wait_until(lambda: lock.fifo._owner is not None, "the holder's turn")
    reader = threading.Thread(target=lambda: seen.append((runner.next_item(p.participant_id),
                                                          runner.progress(p.participant_id),
                                                          runner.participant(p.participant_id))))
    reader.start()
    reader.join(20)
    still_holding = holder.is_alive()
    release.set()
    holder.join(30)
    assert still_holding and seen and seen[0][1] == (0, len(runner.study.versions[p.version]))


_PROC = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from study.writer_lock import writer_lock
    lock = writer_lock({db!r})
    lock.acquire()
    print("turn", flush=True)
    with open({log!r}, "a") as fh:
        fh.write(sys.argv[1] + "\\n")
    if sys.argv[1] == "holder":
        time.sleep(120)                     # killed with SIGKILL while holding the turn
    lock.release()
""")


def _tickets(db: Path) -> int:
    data = Path(str(db) + ".writer-lock").read_bytes()
    return int.from_bytes(data[SLOTS:SLOTS + 8], "little") if len(data) >= SLOTS + 8 else 0


def test_processes_are_served_in_arrival_order_and_a_killed_holder_frees_the_queue(tmp_path):
    db, log = tmp_path / "answers.sqlite", tmp_path / "order.log"
    code = _PROC.format(root=str(ROOT), db=str(db), log=str(log))
    holder = subprocess.Popen([sys.executable, "-c", code, "holder"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "turn"
        waiters = []
        for n in range(6):
            waiters.append(subprocess.Popen([sys.executable, "-c", code, f"w{n}"], stdout=subprocess.PIPE, text=True))
            _wait_until(lambda n=n: _tickets(db) == n + 2, "the process to take a ticket")
        time.sleep(0.2)
        assert log.read_text().split() == ["holder"]       # nobody passed the holder
        holder.send_signal(signal.SIGKILL)                 # kill -9 while holding the turn
        for w in waiters:
            w.communicate(timeout=60)
            assert w.returncode == 0
        assert log.read_text().split() == ["holder"] + [f"w{n}" for n in range(6)]
    finally:
        holder.kill()
        holder.wait()


def test_each_answer_is_synced_before_it_is_acknowledged(study_dir, tmp_path, monkeypatch):
    """Group commit: SQLite commits with synchronous=NORMAL inside the turn, and the WAL is
    fsync'ed after the turn is handed on, before record_answer returns."""
    import study.store as store_module

    db = tmp_path / "answers.sqlite"
    runner = StudyRunner.open(study_dir, str(db))
    with runner.store.reading() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1        # NORMAL
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", recording_fsync)
    p = runner.start()
    item = runner.next_item(p.participant_id)
    synced.clear()
    runner.record_answer(p.participant_id, item.item_id, runner.key[item.item_id].get("expected", "3"), 5)
    assert synced == [str(db.resolve()) + "-wal"]
    old = store_module.Store(f"sqlite:///{tmp_path / 'old.sqlite'}", queue_writers=False)
    with old.reading() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2        # FULL without the queue
