"""Long CSV of answers (FORMATS.md §6): unblinded with the private key, or blinded.

The unblinded file is what analysis reads; the blinded one drops every column that
names a method or a pair source, so it can be shared with people who must stay blind.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from common.atomic import write_atomic
from study.folder import StudyFolder
from study.kinds import REGISTRY
from study.store import Store

COLUMNS = ["study_id", "participant_id", "platform", "worker_id", "version", "position", "item_id", "kind",
           "dataset", "method", "answer", "left_source", "right_source", "choice_source", "attention_passed",
           "response_ms", "answered_at", "finished", "condition"]
BLINDED_DROP = ("method", "left_source", "right_source", "choice_source")


def columns(blinded: bool) -> list[str]:
    return [c for c in COLUMNS if not (blinded and c in BLINDED_DROP)]


def answer_rows(study: StudyFolder, store: Store, *, blinded: bool = False) -> list[dict]:
    """One dict per stored answer, with the §6 columns."""
    key = study.key
    out = []
    for r in store.export_rows(study.id):
        info = key.get(r["item_id"], {})
        kind = info.get("kind", "")
        question = REGISTRY.get(kind)          # None: an attention check
        left, right = info.get("left_source", ""), info.get("right_source", "")
        choice = question.choice_source(info, r["answer"]) if question else ""
        attention = ""
        if question is None and "expected" in info:
            attention = "1" if r["answer"] == info.get("expected") else "0"
        row = {
            "study_id": study.id, "participant_id": r["participant_id"], "platform": r["platform"],
            "worker_id": r["worker_id"], "version": r["version"], "position": r["position"],
            "item_id": r["item_id"], "kind": kind, "dataset": info.get("dataset", ""),
            "method": info.get("method", "") if question is not None and question.method_column else "",
            "answer": r["answer"], "left_source": left, "right_source": right, "choice_source": choice,
            "attention_passed": attention,
            "response_ms": "" if r["response_ms"] is None else r["response_ms"],
            "answered_at": r["answered_at"], "finished": "1" if r["status"] == "finished" else "0",
            "condition": question.condition(info) if question is not None else "",
        }
        out.append({c: row[c] for c in columns(blinded)})
    return out


def to_csv(rows: list[dict], blinded: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(blinded), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def export_answers(study: StudyFolder, store: Store, out: str | Path, *, blinded: bool = False) -> int:
    """Write the CSV atomically; returns the number of answer rows."""
    rows = answer_rows(study, store, blinded=blinded)
    write_atomic(out, to_csv(rows, blinded), newline="")
    return len(rows)
