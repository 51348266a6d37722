"""Capacity of ONE participant process: the most concurrent participants at a human pace
for which p95 click -> next question stays under 1 s, for the Streamlit participant page
and the lean page (app/lean/), on SQLite and on PostgreSQL.

    .venv/bin/python bench/bench_capacity.py                     # everything (about 20-30 min)
    .venv/bin/python bench/bench_capacity.py --pages lean --stores postgresql --steps-lean 50,100,200

For each (page, store) one server process is started on a fresh copy of a workspace with
one saliency study (tests/crowd_helpers.py: --items per method and data set, so
6 x items questions + 2 attention checks per participant); then rounds of N simulated
participants (app/loadtest/: the page's real protocol, Prolific links, arrivals spread
over --ramp seconds, one click per --pace seconds) with N rising through the steps until
a round misses p95 < --target s, loses or duplicates an answer, or leaves someone
unfinished; then one round halfway between the last pass and the first miss. The
capacity is the largest N that passed. PostgreSQL is a throwaway server with fsync on
(tests/study_pg.py). The load average is printed with every round: on a shared machine
the figures are a floor.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server stopped at start ({proc.returncode})")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer at {url} within {timeout} s")
        time.sleep(0.3)


@contextlib.contextmanager
def one_process(page: str, home: Path, db: str | None):
    """One participant server; yields its base URL."""
    port = free_port()
    env = dict(os.environ, PROTOPROTO_HOME=str(home), PYTHONPATH=str(ROOT), PROTOPROTO_PASSWORD="bench-password-1")
    env.pop("PROTOPROTO_DB", None)
    if db:
        env["PROTOPROTO_DB"] = db
    if page == "lean":
        cmd = [sys.executable, "-m", "app", "lean", "--port", str(port)]
        health = f"http://127.0.0.1:{port}/healthz"
    else:
        cmd = [sys.executable, "-m", "app", "--home", str(home), "--no-build", "--port", str(port)]
        health = f"http://127.0.0.1:{port}/_stcore/health"
    log = open(home / f"{page}-server.log", "ab")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(health, proc)
        yield f"http://127.0.0.1:{port}/", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def store(kind: str):
    """None (each study's answers.sqlite) or a fresh PostgreSQL database URL."""
    if kind == "sqlite":
        yield None
        return
    from study_pg import fresh_database, running_pg_server

    with running_pg_server(fsync=True) as server:
        yield fresh_database(server)


def parse_pace(text: str):
    from app.loadtest.common import Pace

    low, high = (float(x) for x in text.split("-"))
    return Pace(low, high)


def round_(url: str, home: Path, db: str | None, page: str, n: int, args, questions: int):
    from app.loadtest.harness import Plan, run

    pace = parse_pace(args.pace)
    plan = Plan(url=url, study_dir=str(home / "studies" / "crowd-saliency"), db=db, participants=n, pace=pace,
                page=page, ramp_s=args.ramp, double_click=args.double_click, seed=n,
                limit_s=args.ramp + questions * (pace.high + 3 * args.target) * 3 + 120)
    return run(plan)


def capacity(page: str, kind: str, steps: list[int], args, template: Path, questions: int) -> tuple[int, list]:
    rows: list = []
    best, worst = 0, None
    work = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    try:
        home = work / "ws"
        shutil.copytree(template, home, symlinks=True)
        with store(kind) as db, one_process(page, home, db) as (url, pid):
            cpu = cpu_per_click(url, home, db, page, pid, args, questions)
            if args.cpu_only:
                return 0, rows, cpu
            def attempt(n: int) -> bool:
                result = round_(url, home, db, page, n, args, questions)
                passed = result.ok(args.target)
                rows.append((n, result, passed))
                print(f"--- {page} / {kind}: {n} participants -> {'PASS' if passed else 'MISS'}\n{result.report()}",
                      flush=True)
                return passed

            for n in steps:
                if attempt(n):
                    best = n
                else:
                    worst = n
                    break
            if worst is not None and worst - best > max(2, best // 4):
                mid = (best + worst) // 2 if best else max(1, worst // 2)
                if mid not in (best, worst) and attempt(mid):
                    best = max(best, mid)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return best, rows, cpu


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_click(url: str, home: Path, db: str | None, page: str, pid: int, args, questions: int) -> float:
    """The server process's CPU time per click (consent and instructions included), with
    4 participants flat out: what one click costs whatever else runs on the machine."""
    from app.loadtest.common import Pace
    from app.loadtest.harness import Plan, run

    before = cpu_seconds(pid)
    result = run(Plan(url=url, study_dir=str(home / "studies" / "crowd-saliency"), db=db, participants=4,
                      pace=Pace(0, 0), page=page, ramp_s=0.5, double_click=0, seed=99, limit_s=600))
    used = cpu_seconds(pid) - before
    clicks = len(result.clicks) + 2 * len(result.records)
    per = used / max(clicks, 1)
    print(f"--- {page}: server CPU {1000 * per:.0f} ms per click ({used:.1f} s for {clicks} clicks, "
          f"{result.finished}/4 finished, load {result.load_before[0]:.1f}->{result.load_after[0]:.1f}); "
          f"one core's worth of clicks: {1 / per:.0f} per s = {5.5 / per:.0f} participants at one click per 5.5 s",
          flush=True)
    return per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", default="streamlit,lean")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--steps-lean", default="10,25,50,100,200,400")
    parser.add_argument("--steps-streamlit", default="1,2,5,10,20,40")
    parser.add_argument("--items", type=int, default=1, help="questions per method and data set (6 x items + 2 each)")
    parser.add_argument("--pace", default="3-8", help="think time per click, LOW-HIGH seconds")
    parser.add_argument("--ramp", type=float, default=15.0, help="arrivals spread over this many seconds")
    parser.add_argument("--double-click", type=float, default=0.05)
    parser.add_argument("--target", type=float, default=1.0, help="p95 click -> next question must stay under this (s)")
    parser.add_argument("--cpu-only", action="store_true", help="only the server CPU per click (a few minutes)")
    args = parser.parse_args()
    import crowd_helpers

    questions = 6 * args.items + 2
    print(f"bench_capacity: pages={args.pages} stores={args.stores} steps lean={args.steps_lean} "
          f"streamlit={args.steps_streamlit} questions={questions} pace={args.pace}s ramp={args.ramp:g}s "
          f"double_click={args.double_click:g} target p95<{args.target:g}s; {os.cpu_count()} cores, "
          f"load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    template = crowd_helpers.template(args.items)
    summary = []
    for page in args.pages.split(","):
        steps = [int(x) for x in (args.steps_lean if page == "lean" else args.steps_streamlit).split(",")]
        for kind in args.stores.split(","):
            best, rows, cpu = capacity(page, kind, steps, args, template, questions)
            summary.append((page, kind, best, rows, cpu))
    print("\n=== capacity of one process (largest N with p95 click -> next question < "
          f"{args.target:g} s, nothing lost or duplicated, everyone finished) ===")
    for page, kind, best, rows, cpu in summary:
        detail = "; ".join(f"N={n}: p95 {1000 * r.quantile(0.95):.0f} ms"
                           f"{'' if ok else ' MISS'} (load {r.load_before[0]:.1f}->{r.load_after[0]:.1f})"
                           for n, r, ok in rows)
        print(f"{page:9s} {kind:10s} capacity {best:4d}   server CPU {1000 * cpu:.0f} ms/click   [{detail}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
