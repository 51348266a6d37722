"""`python -m study links STUDY --base-url URL [--invite N] [--db URL]`: participant links.

Prints the open link (each visitor becomes a new participant), the URL to paste into
Prolific, and, with `--invite N`, N personal links (one token each, stored in the answer
store so that each link resumes its own participant).
"""
from __future__ import annotations

import argparse

from common import cli as options
from study.platforms.local import open_link, personal_link
from study.platforms.prolific import study_url
from study.session import StudyRunner


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m study links", description=__doc__)
    parser.add_argument("study", help="study folder (studies/ID)")
    parser.add_argument("--base-url", required=True, help="address of the running app, e.g. https://host/")
    parser.add_argument("--invite", type=int, default=0, metavar="N", help="create N personal links")
    options.add_db(parser)
    args = parser.parse_args(argv)
    runner = StudyRunner.open(args.study, args.db)
    try:
        sid = runner.study.id
        print(f"open link: {open_link(args.base_url, sid)}")
        print(f"Prolific study URL: {study_url(args.base_url, sid)}")
        codes = runner.study.manifest["codes"]
        print(f"Prolific codes: completion {codes['completion']}, screen-out {codes['screen_out']}, "
              f"no consent {codes.get('no_consent') or '(none: rebuild the study to get one)'}")
        for token in runner.invite(args.invite) if args.invite > 0 else []:
            print(personal_link(args.base_url, sid, token))
    finally:
        runner.store.close()
    return 0
