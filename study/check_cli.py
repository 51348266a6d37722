"""`python -m study check STUDY [--base-url URL] [--media-url URL]`: is the study ready to launch?

Checks the participant links (and that the app answers at --base-url), the completion,
screen-out and no-consent codes, that every blinded image is served at --media-url
(default: --base-url) with the study's exact bytes, the attention checks, Mechanical
Turk's 64 KB page limit and the blinding of every participant-facing text, then prints
what a participant will see. Exit status 1 if any check fails.
"""
from __future__ import annotations

import argparse

from study.folder import open_study
from study.launch_check import preview_text, run_checks

SHOWN = 10      # problems listed per check


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m study check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="study folder (studies/ID)")
    parser.add_argument("--base-url", help="public address of the app, e.g. https://host/")
    parser.add_argument("--media-url", help="where the study's media/ files are hosted (default: --base-url)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--questions", type=int, default=3, help="questions shown in the preview")
    args = parser.parse_args(argv)
    study = open_study(args.study)
    checks = run_checks(study, args.base_url, args.media_url, timeout=args.timeout)
    for check in checks:
        print(f"[{check.mark}] {check.name}: {check.summary}")
        for problem in check.problems[:SHOWN]:
            print(f"    - {problem}")
        if len(check.problems) > SHOWN:
            print(f"    ... and {len(check.problems) - SHOWN} more")
    print()
    print("What a participant sees:")
    print(preview_text(study, args.questions))
    failed = [c.name for c in checks if c.ok is False]
    print()
    print(f"NOT READY: {', '.join(failed)} failed" if failed else "ready (skipped checks are marked 'skip')")
    return 1 if failed else 0
