"""`python -m study import-mturk STUDY RESULTS.csv [--db URL] [--include-rejected]`."""
from __future__ import annotations

import argparse
from pathlib import Path

from common import cli as options
from study.folder import open_study
from study.platforms.mturk_import import answer_table, import_mturk, read_results
from study.store import command_store


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m study import-mturk", description=__doc__)
    parser.add_argument("study", help="study folder (studies/ID)")
    parser.add_argument("results", help="Mechanical Turk results CSV (Batch_..._results.csv)")
    options.add_db(parser)
    parser.add_argument("--include-rejected", action="store_true", help="also import rejected assignments")
    args = parser.parse_args(argv)
    study = open_study(args.study)
    read_results(Path(args.results), answer_table(study))   # a file that is not results: no store opened
    with command_store(args.db, study.root) as store:       # a failure removes a store it created
        store.register_study(study.id, study.fingerprint)
        report = import_mturk(study, store, args.results, include_rejected=args.include_rejected)
    print(f"imported {report.imported} assignments ({report.screened_out} screened out by attention checks); "
          f"skipped {report.rejected_skipped} rejected and {report.already_present} already imported"
          + (f"; {report.refused} did not consent (counted, nothing else stored)" if report.refused else ""))
    if report.duplicate_workers:
        print(f"flagged duplicate_worker: {len(report.duplicate_workers)} worker(s) with several assignments: "
              + ", ".join(report.duplicate_workers))
    return 0
