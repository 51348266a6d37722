"""`python -m study status STUDY [--db URL] [--json FILE]`: where a running study stands
(the app's "Run and monitor" counts on the command line).

Per version: participants assigned, started, still active, finished, screened out and
answers stored; in total also invitations not yet used, attention-check failures and
consent refusals (per platform). Reads the answer store only: a study whose default
SQLite file does not exist yet has no answers, and none is created. Nothing printed
names a method (the counts are by version, as the participant sees them).
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from common import cli as options
from common.atomic import write_atomic
from study.folder import StudyFolder, open_study
from study.store import Store, open_store

VERSION_FIELDS = ("participants", "started", "active", "finished", "screened_out", "answers")


def study_status(study: StudyFolder, store: Store | None) -> dict:
    """The counts of one study (all zero without a store)."""
    people = store.participants_of(study.id) if store is not None else []
    answers = store.export_rows(study.id) if store is not None else []
    refusals = store.refusal_counts(study.id) if store is not None else {}
    answers_per_version = Counter(r["version"] for r in answers)
    versions = []
    for v, items in enumerate(study.versions):
        mine = [p for p in people if p["version"] == v]
        status = Counter(p["status"] for p in mine)
        versions.append({"version": v, "items": len(items), "participants": len(mine),
                         "started": sum(1 for p in mine if p["started_at"]), "active": status["active"],
                         "finished": status["finished"], "screened_out": status["screened_out"],
                         "answers": answers_per_version[v]})
    status = Counter(p["status"] for p in people)
    totals = {key: sum(v[key] for v in versions) for key in VERSION_FIELDS}
    totals.update(invited=status["invited"], attention_failures=sum(int(p["attention_failures"] or 0) for p in people),
                  refusals=sum(refusals.values()))
    return {"study": study.id, "kind": study.kind, "versions": versions, "totals": totals,
            "refusals_by_platform": dict(sorted(refusals.items()))}


def format_status(doc: dict) -> str:
    t = doc["totals"]
    lines = [f"study {doc['study']} ({doc['kind']}): {t['finished']} finished, {t['active']} active, "
             f"{t['screened_out']} screened out, {t['answers']} answers, {t['refusals']} consent refusals, "
             f"{t['invited']} unused invitations, {t['attention_failures']} attention-check failures",
             "",
             f"{'version':>7} {'items':>5} {'participants':>12} {'started':>7} {'active':>6} {'finished':>8} "
             f"{'screened out':>12} {'answers':>7}"]
    for v in doc["versions"]:
        lines.append(f"{v['version']:>7} {v['items']:>5} {v['participants']:>12} {v['started']:>7} {v['active']:>6} "
                     f"{v['finished']:>8} {v['screened_out']:>12} {v['answers']:>7}")
    if doc["refusals_by_platform"]:
        lines.append("")
        lines.append("consent refusals: " + ", ".join(f"{k} {n}" for k, n in doc["refusals_by_platform"].items()))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m study status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="study folder (studies/ID)")
    options.add_db(parser)
    parser.add_argument("--json", type=Path, help="also write the counts as JSON here")
    args = parser.parse_args(argv)
    study = open_study(args.study)
    store = None
    if args.db is not None or (study.root / "answers.sqlite").is_file():
        store = open_store(args.db, study.root)
    try:
        doc = study_status(study, store)
    finally:
        if store is not None:
            store.close()
    print(format_status(doc))
    if args.json:
        write_atomic(args.json, json.dumps(doc, indent=1))
    return 0
