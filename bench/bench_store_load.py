"""Answer-store load: 50 participants answering 22 questions at once, as threads of one
process (the app) and as separate processes, on SQLite and on PostgreSQL in one run.
Prints p50 / p95 / max latency of each answer (`record_answer`, committed on return) and
of every call, stored / expected answers, duplicates, and the machine's load average
before and after each run (the bench's own processes raise it: on 2 cores, 50 busy
participants alone give a load of about 25-50).

    .venv/bin/python bench/bench_store_load.py [--participants 50] [--modes threads processes]
                                               [--backends sqlite postgresql] [--db postgresql://...]
                                               [--with-polling]

The study is synthetic (tests/study_helpers.py): one data set x 3 methods, 7 items each and
1 attention check per version (22 answers). Each participant starts, then loops next_item ->
record_answer (sending every answer twice, as a double click does) -> finish, with no
pause, so this is far harsher than people (who think for seconds per question).

SQLite runs with the writer queue (study/writer_lock.py); `--with-polling` adds a run
without it (SQLite's own busy polling, the old way) for comparison. PostgreSQL is a
throwaway server started for the run (tests/study_pg.py, fsync on; a fresh database per
mode), or the server of `--db` (a fresh database each time: participants of an earlier run
would count as stored). The target (issue 30): 50 processes on SQLite, p95 < 250 ms and
max < 2 s per answer on a quiet 2-core machine.
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from study.build import build_study  # noqa: E402
from study.folder import open_study  # noqa: E402
from study.session import StudyRunner  # noqa: E402
from study.store import Store, resolve_url  # noqa: E402
from study_helpers import make_saliency_setup  # noqa: E402
from study_pg import PgUnavailable, fresh_database, running_pg_server  # noqa: E402


def one_participant(runner: StudyRunner, go=None) -> tuple[list[float], list[float]]:
    """(answer latencies, all calls' (latency, name)) in seconds for one participant."""
    answers, calls = [], []

    def timed(fn, *args, into=None):
        t = time.perf_counter()
        out = fn(*args)
        dt = time.perf_counter() - t
        calls.append((dt, fn.__name__))
        if into is not None:
            into.append(dt)
        return out

    if go is not None:
        go.wait()
    p = timed(runner.start)
    while (item := timed(runner.next_item, p.participant_id)) is not None:
        value = runner.key[item.item_id].get("expected", runner.study.option_values[0])
        timed(runner.record_answer, p.participant_id, item.item_id, value, 900, into=answers)
        timed(runner.record_answer, p.participant_id, item.item_id, value, 900)  # double click: a no-op
    timed(runner.finish, p.participant_id)
    return answers, calls


def open_runner(study, db: str, queue_writers: bool) -> StudyRunner:
    return StudyRunner(open_study(study), Store(resolve_url(db), queue_writers=queue_writers))


def _process_worker(study: str, db: str, queue_writers: bool, ready, go, queue) -> None:
    try:
        runner = open_runner(study, db, queue_writers)
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        queue.put(exc)
        ready.release()
        return
    ready.release()
    try:
        queue.put(one_participant(runner, go))
    except Exception as exc:  # noqa: BLE001
        queue.put(exc)
    runner.store.close()


def run_threads(study: Path, db: str, n: int, queue_writers: bool):
    runner = open_runner(study, db, queue_writers)
    results, errors = [], []
    go = threading.Event()

    def work():
        try:
            results.append(one_participant(runner, go))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n)]
    [th.start() for th in threads]
    t = time.perf_counter()
    go.set()
    [th.join() for th in threads]
    return results, errors, time.perf_counter() - t


def run_processes(study: Path, db: str, n: int, queue_writers: bool):
    ctx = mp.get_context("spawn")
    queue, ready, go = ctx.Queue(), ctx.Semaphore(0), ctx.Event()
    procs = [ctx.Process(target=_process_worker, args=(str(study), db, queue_writers, ready, go, queue)) for _ in range(n)]
    [p.start() for p in procs]
    for _ in procs:                      # every process imported and connected before the start
        if not ready.acquire(timeout=600):
            raise SystemExit("a worker process did not start")
    t = time.perf_counter()
    go.set()
    out = [queue.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t
    [p.join() for p in procs]
    return [o for o in out if not isinstance(o, Exception)], [o for o in out if isinstance(o, Exception)], wall


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def fmt(values: list[float]) -> str:
    return (f"p50 {1000 * statistics.median(values):7.1f} ms  p95 {1000 * pct(values, 0.95):7.1f} ms  "
            f"max {1000 * max(values):7.1f} ms")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def measure(study: Path, db: str, mode: str, n: int, queued: bool) -> dict:
    before = load()
    run = run_threads if mode == "threads" else run_processes
    results, errors, wall = run(study, db, n, queued)
    after = load()
    runner = StudyRunner.open(study, db)
    rows = runner.store.export_rows(runner.study.id)
    n_items = len(runner.study.versions[0])
    dialect = runner.store.dialect
    runner.store.close()
    answers = [x for a, _ in results for x in a]
    calls = [x for _, c in results for x, _ in c]
    return dict(dialect=dialect, mode=mode, queued=queued, wall=wall, errors=errors, answers=answers, calls=calls,
                slowest=max(((x, name) for _, c in results for x, name in c), default=(0.0, "-")),
                stored=len(rows), expected=n * n_items, n_items=n_items,
                dupes=sum(c - 1 for c in Counter((r["participant_id"], r["item_id"]) for r in rows).values()),
                load_before=before, load_after=after)


def report(r: dict, n: int) -> None:
    how = {"sqlite": " writer queue" if r["queued"] else " busy polling (old)"}.get(r["dialect"], "")
    print(f"{r['dialect']}{how}, {r['mode']}: {n} participants x {r['n_items']} answers in {r['wall']:.1f} s, "
          f"errors {len(r['errors'])}{' ' + repr(r['errors'][0]) if r['errors'] else ''}  "
          f"(load average {r['load_before']} before, {r['load_after']} after)")
    if r["answers"]:
        print(f"  answer latency   {fmt(r['answers'])}  (n={len(r['answers'])})")
        print(f"  any call latency {fmt(r['calls'])}  (n={len(r['calls'])}; slowest: {r['slowest'][1]})")
    print(f"  stored {r['stored']}/{r['expected']}, duplicates {r['dupes']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--modes", nargs="+", default=["threads", "processes"], choices=["threads", "processes"])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--db", default=None, help="PostgreSQL server URL (default: a throwaway server)")
    parser.add_argument("--with-polling", action="store_true",
                        help="also run SQLite without the writer queue (busy polling, the old way)")
    args = parser.parse_args()
    n = args.participants
    print(f"{os.cpu_count()} CPUs, load average {load()} (1, 5, 15 min) at the start", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        spec = make_saliency_setup(tmp, n_images=24, datasets=("birds",), size=32, pool_size=20,
                                   items_per_version=7, versions=4, attention={"count": 1, "max_failures": 5})
        study = build_study(spec, tmp / "studies" / "load")
        server = None
        if "postgresql" in args.backends:
            if args.db:
                server = args.db.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
            else:
                try:
                    server = stack.enter_context(running_pg_server(fsync=True))
                except PgUnavailable as exc:
                    print(f"postgresql: skipped ({exc})")
        for mode in args.modes:
            runs = []
            if "sqlite" in args.backends:
                runs += [("sqlite", q) for q in ([False, True] if args.with_polling else [True])]
            if server is not None:
                runs.append(("postgresql", True))
            for backend, queued in runs:
                db = (f"sqlite:///{tmp / f'answers-{mode}-{queued}.sqlite'}" if backend == "sqlite"
                      else fresh_database(server))
                results.append(measure(study, db, mode, n, queued))
                report(results[-1], n)
    print(f"\nanswer latency, {n} participants (each answer committed before the next question):")
    print(f"{'store':28s} {'mode':10s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s} {'stored':>10s}  load average before -> after")
    for r in results:
        name = r["dialect"] + (" (writer queue)" if r["dialect"] == "sqlite" and r["queued"] else
                               " (busy polling)" if r["dialect"] == "sqlite" else "")
        a = r["answers"] or [float("nan")]
        print(f"{name:28s} {r['mode']:10s} {1000 * statistics.median(a):8.1f} {1000 * pct(a, 0.95):8.1f} "
              f"{1000 * max(a):8.1f} {r['stored']:>5d}/{r['expected']:<4d}  {r['load_before']} -> {r['load_after']}")


if __name__ == "__main__":
    main()
