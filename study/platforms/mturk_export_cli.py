"""`python -m study export-mturk STUDY --base-url URL --out DIR`: a Mechanical Turk batch."""
from __future__ import annotations

import argparse

from study.folder import open_study
from study.platforms.mturk_export import export_mturk, status_note


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m study export-mturk", description=__doc__)
    parser.add_argument("study", help="study folder (studies/ID)")
    parser.add_argument("--base-url", required=True, help="URL where DIR/media/ will be hosted")
    parser.add_argument("--out", required=True, help="folder to create")
    args = parser.parse_args(argv)
    study = open_study(args.study)
    out = export_mturk(study, args.base_url, args.out)
    print(f"wrote {len(study.versions)} HITs to {out} (input.csv, layout.html, hits/, media/); "
          f"host media/ at {args.base_url}, then run `python -m study check-mturk {out}`; see {out}/GUIDE.md.")
    print(f"Note: {status_note()}")
    return 0
