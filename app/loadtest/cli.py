"""`python -m app loadtest URL --home HOME --study ID`: simulated participants, then the figures.

Loopback only, bounded in count (--participants) and time (--limit); it stops by itself.
Exit status 0 when every participant finished with no answer lost or duplicated (and,
with --p95, the click -> next question p95 under that many seconds), 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys

from app.loadtest.common import Pace
from app.loadtest.harness import Plan, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the participant page, e.g. http://127.0.0.1:8080/")
    parser.add_argument("--home", default=os.environ.get("PROTOPROTO_HOME"), help="the workspace the app serves")
    parser.add_argument("--study", required=True, help="study id (a folder under HOME/studies)")
    parser.add_argument("--db", default=os.environ.get("PROTOPROTO_DB"), help="the app's answer store (read afterwards)")
    parser.add_argument("--page", choices=("lean", "streamlit"), default="lean")
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--pace", default="3-8", help="think time per click in seconds, LOW-HIGH (0-0: flat out)")
    parser.add_argument("--ramp", type=float, default=10.0, help="arrivals spread over this many seconds")
    parser.add_argument("--limit", type=float, default=600.0, help="stop everything after this many seconds")
    parser.add_argument("--double-click", type=float, default=0.05, help="share of clicks sent twice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--p95", type=float, default=None, help="fail unless p95 click -> next question < this (s)")
    args = parser.parse_args(argv)
    if not args.home:
        parser.error("--home is required (or set PROTOPROTO_HOME)")
    try:
        low, high = (float(x) for x in args.pace.split("-"))
    except ValueError:
        parser.error(f"--pace {args.pace!r}: expected LOW-HIGH seconds, e.g. 3-8")
    if not 1 <= args.participants <= 2000:
        parser.error("--participants must be between 1 and 2000")
    plan = Plan(url=args.url, study_dir=os.path.join(args.home, "studies", args.study), db=args.db,
                participants=args.participants, pace=Pace(low, high), page=args.page, ramp_s=args.ramp,
                limit_s=args.limit, double_click=args.double_click, seed=args.seed)
    try:
        result = run(plan)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.report(), flush=True)
    return 0 if result.ok(args.p95) else 1


if __name__ == "__main__":
    raise SystemExit(main())
