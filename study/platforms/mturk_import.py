"""Import a Mechanical Turk results CSV into the answer store (one transaction).

Accepted answer shapes (all three occur in real batches):
- `Answer.taskAnswers`: a JSON list with one object, e.g. `[{"q1.3": {"on": true}, ...}]`
  (or nested `{"q1": {"3": {"on": true}}}`, `{"q1": {"label": "3"}}`, `{"q1": "3"}`);
- flattened: `Answer.q1.3.on` = `true` (crowd radio buttons) or `Answer.q1.label` = `3`;
- plain: `Answer.q1` = `3` (classic HTML forms).
A label may be the option's value (`3`, `A`) or its displayed text (`3 (most salient)`).

Rules: rejected assignments are left out unless asked; an assignment already imported
is skipped (re-importing a file is harmless); a worker with several assignments is
flagged `duplicate_worker` on all of them; an unknown item, a missing or out-of-range
answer is an error naming the CSV row, and nothing is written.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, update

from study.errors import StudyError
from study.folder import StudyFolder
from study.store import Store, participants

FIXED = ("HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime", "SubmitTime", "WorkTimeInSeconds")
TZ_OFFSETS = {"UTC": 0, "GMT": 0, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6, "CDT": -5,
              "EST": -5, "EDT": -4}
_Q = re.compile(r"^q(\d+)$")


@dataclass
class ImportReport:
    imported: int = 0
    rejected_skipped: int = 0
    already_present: int = 0
    duplicate_workers: list[str] = field(default_factory=list)
    screened_out: int = 0


def parse_time(value: str, where: str) -> str:
    """MTurk's `Sat Nov 21 10:00:00 PST 2026` (or ISO 8601) -> ISO 8601 UTC."""
    value = value.strip()
    try:
        if re.match(r"^\d{4}-\d{2}-\d{2}", value):
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            t = t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
        else:
            parts = value.split()
            tz = parts.pop(4)
            if tz not in TZ_OFFSETS:
                raise ValueError(tz)
            t = dt.datetime.strptime(" ".join(parts), "%a %b %d %H:%M:%S %Y")
            t = t.replace(tzinfo=dt.timezone(dt.timedelta(hours=TZ_OFFSETS[tz])))
    except (ValueError, IndexError):
        raise StudyError(f"{where}: not a time MTurk writes ({value!r})") from None
    t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _flatten(obj, prefix: str, out: dict[str, str]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = "true" if obj is True else "false" if obj is False else str(obj)


def answer_fields(row: dict[str, str], where: str) -> dict[str, str]:
    """All answer paths of a row, shape-independent: {'q1.3.on': 'true', 'q2.label': 'A', 'q3': '2'}."""
    fields: dict[str, str] = {}
    raw = row.get("Answer.taskAnswers")
    if raw:
        try:
            data = json.loads(raw)
        except ValueError:
            raise StudyError(f"{where}: column 'Answer.taskAnswers' is not JSON") from None
        for obj in data if isinstance(data, list) else [data]:
            _flatten(obj, "", fields)
    for col, value in row.items():
        if col and col.startswith("Answer.") and col != "Answer.taskAnswers" and value not in (None, ""):
            fields[col[len("Answer."):]] = value
    return fields


def _choose(study: StudyFolder, fields: dict[str, str], n: int, where: str) -> str | None:
    """The answer to question n from whichever shape carries it."""
    by_label = {o["label"]: o["value"] for o in study.options}
    values = set(study.option_values)
    found: list[str] = []
    for path, value in fields.items():
        head, _, rest = path.partition(".")
        if head != f"q{n}":
            continue
        if rest in ("", "label", "value"):
            found.append(by_label.get(value, value))
        elif rest.endswith(".on") and rest.count(".") == 1:
            if value.strip().lower() == "true":
                found.append(rest[:-3])
        else:
            raise StudyError(f"{where}: answer field 'Answer.{path}' is not a shape this importer reads")
    found = sorted(set(found))
    for value in found:
        if value not in values:
            raise StudyError(f"{where}: question q{n}: answer {value!r} is out of range (one of {sorted(values)})")
    if len(found) > 1:
        raise StudyError(f"{where}: question q{n} has several answers {found}")
    return found[0] if found else None


def _participant_id(study_id: str, assignment: str) -> str:
    return "mt-" + hashlib.sha256(f"{study_id}\0{assignment}".encode()).hexdigest()[:14]


def read_results(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StudyError(f"{path}: cannot read results CSV ({exc})") from None
    for col in FIXED:
        if col not in header:
            raise StudyError(f"{path}: column {col!r} missing (is this a Mechanical Turk results CSV?)")
    return header, rows


def _parse_row(study: StudyFolder, row: dict[str, str], where: str) -> dict:
    """Validate one assignment; returns its version, answers, times and attention failures."""
    for col in ("AssignmentId", "WorkerId"):
        if not (row.get(col) or "").strip():
            raise StudyError(f"{where}: column {col!r} is empty")
    fields = answer_fields(row, where)
    sid = row.get("Input.study") or fields.get("study")
    if sid and sid != study.id:
        raise StudyError(f"{where}: belongs to study {sid!r}, not {study.id!r}")
    version_raw = row.get("Input.version") or fields.get("version") or ""
    if not version_raw.isdigit() or int(version_raw) >= len(study.versions):
        raise StudyError(f"{where}: version {version_raw!r} is not a version of study {study.id!r}")
    version = int(version_raw)
    seq = study.versions[version]
    known = {"study", "version"} | {f"q{n}" for n in range(1, len(seq) + 1)} | {f"q{n}_item" for n in range(1, len(seq) + 1)}
    for path in fields:
        if path.partition(".")[0] not in known:
            raise StudyError(f"{where}: answer 'Answer.{path}' is for an unknown item "
                             f"(version {version} has {len(seq)} questions)")
    answers = []
    for n, item_id in enumerate(seq, start=1):
        for label, given in (("Input", row.get(f"Input.q{n}_item")), ("Answer", fields.get(f"q{n}_item"))):
            if given and given != item_id:
                raise StudyError(f"{where}: {label}.q{n}_item {given!r} is an unknown item for question {n} "
                                 f"of version {version}")
        value = _choose(study, fields, n, where)
        if value is None:
            raise StudyError(f"{where}: question q{n} has no answer")
        answers.append((n - 1, item_id, value))
    key = study.key
    failures = sum(1 for _, item_id, value in answers
                   if key[item_id]["kind"] == "attention" and value != key[item_id]["expected"])
    return dict(version=version, answers=answers, failures=failures,
                accept=parse_time(row["AcceptTime"], f"{where}: column 'AcceptTime'"),
                submit=parse_time(row["SubmitTime"], f"{where}: column 'SubmitTime'"))


def import_mturk(study: StudyFolder, store: Store, results: str | Path, *, include_rejected: bool = False) -> ImportReport:
    """Import every assignment of the results CSV in one transaction (all or nothing)."""
    results = Path(results)
    _, rows = read_results(results)
    report = ImportReport()
    max_fail = study.manifest["attention"]["max_failures"]
    codes = study.manifest["codes"]
    workers: set[str] = set()
    with store.transaction() as conn:
        for i, row in enumerate(rows):
            where = f"{results}: row {i + 2}"            # row 1 is the header
            if (row.get("AssignmentStatus") or "").strip().lower() == "rejected" and not include_rejected:
                report.rejected_skipped += 1
                continue
            p = _parse_row(study, row, where)
            workers.add(row["WorkerId"])
            pid = _participant_id(study.id, row["AssignmentId"])
            if store.participant(conn, study.id, participant_id=pid) is not None:
                report.already_present += 1
                continue
            screened = p["failures"] > max_fail
            report.screened_out += screened
            conn.execute(insert(participants).values(
                participant_id=pid, study_id=study.id, token=pid, platform="mturk", worker_id=row["WorkerId"],
                platform_study_id=row["HITId"], platform_session_id=row["AssignmentId"], version=p["version"],
                status="screened_out" if screened else "finished", created_at=p["accept"], started_at=p["accept"],
                finished_at=p["submit"], completion_code=codes["screen_out" if screened else "completion"],
                attention_failures=p["failures"], attention_passed=0 if screened else 1, flags=""))
            for position, item_id, value in p["answers"]:
                store.insert_answer(conn, dict(study_id=study.id, participant_id=pid, item_id=item_id,
                                               position=position, answer=value, response_ms=None,
                                               answered_at=p["submit"]))
            report.imported += 1
        # a worker seen in several assignments (in this file or before) is flagged on all of them
        for worker in sorted(workers):
            rows_of = conn.execute(participants.select().where(
                participants.c.study_id == study.id, participants.c.platform == "mturk",
                participants.c.worker_id == worker)).fetchall()
            if len(rows_of) < 2:
                continue
            report.duplicate_workers.append(worker)
            for r in rows_of:
                flags = set(filter(None, r.flags.split(",")))
                if "duplicate_worker" not in flags:
                    conn.execute(update(participants).where(participants.c.participant_id == r.participant_id)
                                 .values(flags=",".join(sorted(flags | {"duplicate_worker"}))))
    return report
