"""`python -m study export-answers STUDY [--db URL] [--blinded] --out FILE.csv`."""
from __future__ import annotations

import argparse

from common import cli as options
from study.export import export_answers
from study.folder import open_study
from study.store import open_store


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m study export-answers", description=__doc__)
    parser.add_argument("study", help="study folder (studies/ID)")
    options.add_db(parser)
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--blinded", action="store_true", help="drop method and pair-source columns")
    args = parser.parse_args(argv)
    study = open_study(args.study)
    store = open_store(args.db, study.root)
    try:
        n = export_answers(study, store, args.out, blinded=args.blinded)
    finally:
        store.close()
    print(f"wrote {n} answers of study {study.id!r} to {args.out} ({'blinded' if args.blinded else 'unblinded'})")
    return 0
