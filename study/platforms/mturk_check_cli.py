"""`python -m study check-mturk DIR`: check that every media URL of an export is served."""
from __future__ import annotations

import argparse

from study.platforms.mturk_export import check_hosted


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m study check-mturk", description=__doc__)
    parser.add_argument("export", help="folder written by export-mturk")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args(argv)
    problems = check_hosted(args.export, timeout=args.timeout)
    for url, problem in problems:
        print(f"{url}: {problem}")
    print(f"{len(problems)} problem(s)" if problems else "all media URLs resolve to the exported files")
    return 1 if problems else 0
