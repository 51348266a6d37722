"""Answer-store load: 50 participants answering 22 questions at once, as threads of one
process (the app) and as separate processes. Prints p50 / p95 / max latency of each
answer (`record_answer`, committed on return) and of every call, stored / expected
answers, and duplicates.

    .venv/bin/python bench/bench_store_load.py [--participants 50] [--modes threads processes]
                                               [--db postgresql://...]

The study is synthetic (tests/study_helpers.py): one data set x 3 methods, 7 items each and
1 attention check per version (22 answers). Each participant starts, then loops next_item ->
record_answer (sending every answer twice, as a double click does) -> finish, with no
pause, so this is far harsher than people (who think for seconds per question).

On SQLite each mode runs twice in one go: with the writer queue (study/writer_lock.py,
the default) and without it (SQLite's own busy polling, as before), so the ratio is
measured under the same machine load. With --db only the given store is measured (one
mode per fresh database: participants of an earlier run would count as stored).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--modes", nargs="+", default=["threads", "processes"], choices=["threads", "processes"])
    parser.add_argument("--db", default=None, help="PostgreSQL URL (a fresh database); default: SQLite in a temp folder")
    parser.add_argument("--only-queued", action="store_true",
                        help="skip the SQLite runs without the writer queue (busy polling, the old way)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = make_saliency_setup(tmp, n_images=24, datasets=("birds",), size=32, pool_size=20,
                                   items_per_version=7, versions=4, attention={"count": 1, "max_failures": 5})
        study = build_study(spec, tmp / "studies" / "load")
        for mode in args.modes:
            for queued in ([True] if args.only_queued or args.db else [False, True]):
                db = args.db or f"sqlite:///{tmp / f'answers-{mode}-{queued}.sqlite'}"
                run = run_threads if mode == "threads" else run_processes
                results, errors, wall = run(study, db, args.participants, queued)
                runner = StudyRunner.open(study, db)
                rows = runner.store.export_rows(runner.study.id)
                n_items = len(runner.study.versions[0])
                expected = args.participants * n_items
                dupes = sum(c - 1 for c in Counter((r["participant_id"], r["item_id"]) for r in rows).values())
                answers = [x for a, _ in results for x in a]
                calls = [x for _, c in results for x, _ in c]
                slowest = max(((x, name) for _, c in results for x, name in c), default=(0.0, "-"))
                how = "" if args.db else (" writer queue" if queued else " busy polling (old)")
                print(f"{runner.store.dialect}{how}, {mode}: {args.participants} participants x {n_items} answers "
                      f"in {wall:.1f} s, errors {len(errors)}{' ' + repr(errors[0]) if errors else ''}")
                if answers:
                    print(f"  answer latency   {fmt(answers)}  (n={len(answers)})")
                    print(f"  any call latency {fmt(calls)}  (n={len(calls)}; slowest: {slowest[1]})")
                print(f"  stored {len(rows)}/{expected}, duplicates {dupes}", flush=True)
                runner.store.close()
            if args.db:
                break

if __name__ == "__main__":
    main()
