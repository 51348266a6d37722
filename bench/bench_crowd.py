"""A crowd on one machine: `python -m app serve` (N lean participant processes, the
Streamlit researcher app, nginx, a local PostgreSQL with fsync on) and 200 simulated
participants at a human pace (app/loadtest/: the lean page's real HTTP requests).

    .venv/bin/python bench/bench_crowd.py                        # 200 participants, 3 processes
    .venv/bin/python bench/bench_crowd.py --participants 400 --processes 4 --items 3

Target: 0 answers lost or duplicated, every participant finished, p95 click -> next
question < 1 s. It prints its parameters, the harness's figures (with where a click's
time goes: the answer POST, the next page's GET, the pictures, and the server's share
of each) and the load average before and after; everything it started is stopped.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]


def _stat(pid: int) -> tuple[int, float] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds so far of every process under `root`, by part (lean, researcher, postgres, nginx)."""
    parents, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found:
                parents[int(entry)], cpu[int(entry)] = found
    out: dict[str, float] = {}
    for pid in cpu:
        p, chain = pid, []
        while p in parents and p != root and p > 1:
            chain.append(p)
            p = parents[p]
        if p != root:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except FileNotFoundError:
            continue
        part = ("lean" if " app lean" in cmd else "researcher" if "streamlit" in cmd or " -m app --home" in cmd
                else "postgres" if "postgres" in cmd else "nginx" if "nginx" in cmd else "other")
        out[part] = out.get(part, 0.0) + cpu[pid]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--processes", type=int, default=3, help="lean participant processes")
    parser.add_argument("--items", type=int, default=2, help="questions per method and data set (6 x items + 2 each)")
    parser.add_argument("--pace", default="3-8", help="think time per click, LOW-HIGH seconds")
    parser.add_argument("--ramp", type=float, default=30.0, help="arrivals spread over this many seconds")
    parser.add_argument("--double-click", type=float, default=0.05)
    parser.add_argument("--target", type=float, default=1.0, help="p95 click -> next question under this (s)")
    args = parser.parse_args()
    import crowd_helpers
    from bench_capacity import free_port, parse_pace

    from app.loadtest.harness import Plan, run

    questions = 6 * args.items + 2
    print(f"bench_crowd: participants={args.participants} processes={args.processes} questions={questions} "
          f"pace={args.pace}s ramp={args.ramp:g}s double_click={args.double_click:g} target p95<{args.target:g}s; "
          f"{os.cpu_count()} cores, load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-crowd-"))
    pg = Path(tempfile.mkdtemp(prefix="bench-crowd-pg-"))
    if os.geteuid() == 0:
        shutil.chown(pg, "postgres", "postgres")
    home = crowd_helpers.workspace(work / "ws", items=args.items)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), PROTOPROTO_PASSWORD="bench-password-1")
    env.pop("PROTOPROTO_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--home", str(home), "--processes",
                             str(args.processes), "--db", "local", "--pg-data", str(pg / "data"), "--port", str(port),
                             "--run-dir", str(work / "run")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 180
        while not any("participant processes, store" in line for line in lines):
            line = proc.stdout.readline()
            if not line and proc.poll() is not None or time.monotonic() > deadline:
                print("".join(lines), file=sys.stderr)
                return 1
            lines.append(line)
        db = re.search(r"store (postgresql://\S+);", "".join(lines)).group(1)
        pace = parse_pace(args.pace)
        plan = Plan(url=f"http://127.0.0.1:{port}/", study_dir=str(home / "studies" / crowd_helpers.STUDY), db=db,
                    participants=args.participants, pace=pace, ramp_s=args.ramp, double_click=args.double_click,
                    limit_s=args.ramp + questions * (pace.high + 3 * args.target) * 3 + 120)
        import resource

        before, own = tree_cpu(proc.pid), resource.getrusage(resource.RUSAGE_SELF)
        result = run(plan)
        after, own2 = tree_cpu(proc.pid), resource.getrusage(resource.RUSAGE_SELF)
        print(result.report(), flush=True)
        used = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in sorted(after)}
        used["harness"] = (own2.ru_utime + own2.ru_stime) - (own.ru_utime + own.ru_stime)
        total = sum(used.values())
        clicks = len(result.clicks) + 2 * len(result.records)
        print("CPU during the run: " + ", ".join(f"{k} {v:.1f} s" for k, v in used.items())
              + f"; {total:.1f} s in all over {result.wall_s:.0f} s = {total / result.wall_s:.2f} cores; "
              f"per click: participant processes {1000 * used.get('lean', 0) / clicks:.0f} ms, PostgreSQL "
              f"{1000 * used.get('postgres', 0) / clicks:.0f} ms, nginx {1000 * used.get('nginx', 0) / clicks:.0f} ms, "
              f"harness {1000 * used['harness'] / clicks:.0f} ms", flush=True)
        verdict = "PASS" if result.ok(args.target) else "MISS"
        print(f"{verdict}: {args.participants} participants, {args.processes} processes: p95 "
              f"{1000 * result.quantile(0.95):.0f} ms (target < {1000 * args.target:.0f} ms), {result.lost} lost, "
              f"{result.duplicates} duplicates, {result.finished}/{len(result.records)} finished", flush=True)
        return 0 if verdict == "PASS" else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pg, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
