"""Import a Mechanical Turk results CSV into the answer store (one transaction).

Answer columns are read through one table built from the exported layout
(`mturk_export.layout_fields`, `hidden_fields`), not from guesses. For a radio button
`<crowd-radio-button name="q1.3" value="3">` of group `q1` (and `consent`), these paths
after `Answer.` are accepted, whether they come as flattened columns or inside the JSON
of `Answer.taskAnswers` (flattened with dots):

- `q1.3.3` = true/false: crowd-radio-group / crowd-radio-button output as AWS documents it,
  `{name: {value: checked}}`, e.g. `Answer.taskAnswers` = `[{"q1.3": {"3": true}, ...}]`;
- `q1.3.on` = true/false: the same button without a value attribute (`{"q1.3": {"on": true}}`,
  or nested `{"q1": {"3": {"on": true}}}`);
- `q1.3` = true/false/on: a plain checkbox or radio named `q1.3`;
- `q1`, `q1.label`, `q1.value` = the option's value (`3`, `A`) or its label
  (`3 (most salient)`): plain inputs (`<input type="radio" name="q1" value="3">`) and
  classifier-style `{"q1": {"label": "3"}}`;
- the hidden inputs `study`, `version`, `batch`, `q<N>_item`.

Any other answer column (or JSON field) is one error naming it, and nothing is imported.

Rules: every assignment must come from a HIT of a recorded batch of this study
(`mturk_batch`): its `Input.*` columns other than the question texts (or its hidden
fields) must match a row of `private/mturk/batch-<ID>.json`, else one error naming the
row and the HIT id. Rejected
assignments are left out unless asked; an assignment already imported is skipped
(re-importing a file is harmless); participant ids and tokens are keyed hashes of the
AssignmentId under the study's MTurk key (unguessable, same on every import); an
assignment whose worker chose "I do not agree" (the layout blocks submitting it, but a
page without JavaScript could) stores one refusal and nothing else; a worker with
several assignments is flagged `duplicate_worker` on all of them; an unknown item, a
missing or out-of-range answer is an error naming the CSV row, and nothing is written.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from common.csvsep import separator_message
from study.errors import StudyError
from study.folder import StudyFolder
from study.platforms import mturk_batch
from study.platforms.mturk_export import hidden_fields, layout_fields
from study.store import Store

FIXED = ("HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime", "SubmitTime", "WorkTimeInSeconds")
TZ_OFFSETS = {"UTC": 0, "GMT": 0, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6, "CDT": -5,
              "EST": -5, "EDT": -4}
TRUE, FALSE = {"true", "on"}, {"false"}
_Q = re.compile(r"^q(\d+)$")


@dataclass
class ImportReport:
    imported: int = 0
    rejected_skipped: int = 0
    already_present: int = 0
    duplicate_workers: list[str] = field(default_factory=list)
    screened_out: int = 0
    refused: int = 0


@dataclass(frozen=True)
class Slot:
    """What one answer path means: `flag` (the cell says whether `value` was chosen in
    `group`), `choice` (the cell is the chosen value or its label) or `hidden` (an input)."""
    kind: str
    group: str
    value: str = ""


def answer_table(study: StudyFolder) -> dict[str, Slot]:
    """Every answer path the exported layout can produce -> its meaning."""
    table: dict[str, Slot] = {}
    fields = layout_fields(study)
    for f in fields:
        for path in (f"{f.name}.{f.value}", f"{f.name}.on", f.name):
            table[path] = Slot("flag", f.group, f.value)
    for group in dict.fromkeys(f.group for f in fields):
        for path in (group, f"{group}.label", f"{group}.value"):
            table[path] = Slot("choice", group)
    for name in hidden_fields(study):
        table[name] = Slot("hidden", name)
    return table


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
        out[prefix] = "true" if obj is True else "false" if obj is False else "" if obj is None else str(obj)


def answer_fields(row: dict[str, str], where: str) -> dict[str, tuple[str, str]]:
    """All answer paths of a row: path -> (value, the column it came from)."""
    fields: dict[str, tuple[str, str]] = {}
    raw = row.get("Answer.taskAnswers")
    if raw:
        try:
            data = json.loads(raw)
        except ValueError:
            raise StudyError(f"{where}: column 'Answer.taskAnswers' is not JSON") from None
        for obj in data if isinstance(data, list) else [data]:
            flat: dict[str, str] = {}
            _flatten(obj, "", flat)
            fields.update({path: (value, f"Answer.taskAnswers field {path!r}") for path, value in flat.items()})
    for col, value in row.items():
        if col and col.startswith("Answer.") and col != "Answer.taskAnswers" and value not in (None, ""):
            fields[col[len("Answer."):]] = (value, f"column {col!r}")
    return fields


def read_results(path: Path, table: dict[str, Slot] | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows; with `table`, every `Answer.*` column must be a path of it."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StudyError(f"{path}: cannot read results CSV ({exc})") from None
    for col in FIXED:
        if col not in header:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                wrong_separator = separator_message(path, fh.readline(), FIXED)
            if wrong_separator:
                raise StudyError(wrong_separator)
            raise StudyError(f"{path}: column {col!r} missing (is this a Mechanical Turk results CSV?)")
    if any(None in row for row in rows):
        line = next(i for i, row in enumerate(rows) if None in row) + 2
        raise StudyError(f"{path}: row {line} has more cells than the header")
    for col in header:
        if table is not None and col.startswith("Answer.") and col != "Answer.taskAnswers" \
                and col[len("Answer."):] not in table:
            raise StudyError(f"{path}: column {col!r} is not an answer shape of this study's exported layout "
                             f"(expected e.g. 'Answer.q1.<value>.<value>', 'Answer.q1.<value>.on', "
                             f"'Answer.q1.label', 'Answer.q1' or 'Answer.taskAnswers')")
    return header, rows


class _Reader:
    """Reads the assignments of one results file against the study and its batches."""

    def __init__(self, study: StudyFolder, results: Path):
        self.study = study
        self.table = answer_table(study)
        self.labels: dict[str, dict[str, str]] = {}
        for f in layout_fields(study):
            self.labels.setdefault(f.group, {}).update({f.value: f.value, f.label: f.value})
        self.batches: dict[str, dict | None] = {}
        self.hits: dict[str, tuple[str, int, str]] = {}       # HITId -> (batch, version, first row)

    def _choices(self, fields: dict[str, tuple[str, str]], where: str) -> tuple[dict, dict[str, dict[str, str]]]:
        hidden: dict[str, str] = {}
        chosen: dict[str, dict[str, str]] = {}          # group -> {value: column}
        for path, (value, column) in fields.items():
            slot = self.table.get(path)
            if slot is None:
                raise StudyError(f"{where}: {column} is not an answer shape of this study's exported layout")
            if slot.kind == "hidden":
                hidden[slot.group] = value
                continue
            chosen.setdefault(slot.group, {})
            if slot.kind == "flag":
                flag = value.strip().lower()
                if flag not in TRUE | FALSE:
                    raise StudyError(f"{where}: {column} must be true or false (got {value[:40]!r})")
                if flag in TRUE:
                    chosen[slot.group][slot.value] = column
            elif value.strip():
                labels = self.labels[slot.group]
                if value.strip() not in labels:
                    what = "consent" if slot.group == "consent" else f"question {slot.group}"
                    raise StudyError(f"{where}: {what}: answer {value[:40]!r} is out of range "
                                     f"(one of {sorted(set(labels.values()))})")
                chosen[slot.group][labels[value.strip()]] = column
        return hidden, chosen

    def _batch_row(self, row: dict[str, str], hidden: dict[str, str], version: int, where: str) -> dict:
        """The exported HIT row this assignment was made from; refuses any other HIT."""
        hit = (row.get("HITId") or "").strip()
        batch = row.get("Input.batch") or hidden.get("batch") or ""
        if batch not in self.batches:
            self.batches[batch] = mturk_batch.load_batch(self.study, batch)
        record = self.batches[batch]
        if record is None:
            known = ", ".join(mturk_batch.batches(self.study)) or "none"
            raise StudyError(f"{where}: HIT {hit!r} is not a HIT of an exported batch of study {self.study.id!r} "
                             f"(batch {batch[:40]!r}; recorded batches: {known})")
        exported = {h["version"]: h["input"] for h in record["hits"]}.get(version)
        if exported is None:
            raise StudyError(f"{where}: HIT {hit!r} is not in batch {batch} (it has no HIT of version {version})")
        for col, value in row.items():        # identifying columns only: texts may come back re-encoded
            if col and col.startswith("Input.") and not col.endswith("_text") \
                    and exported.get(col[len("Input."):]) != value:
                raise StudyError(f"{where}: HIT {hit!r} is not in batch {batch}: column {col!r} differs from "
                                 "the exported row")
        seen = self.hits.setdefault(hit, (batch, version, where))
        if seen[:2] != (batch, version):
            raise StudyError(f"{where}: HIT {hit!r} is version {version} of batch {batch} here but version "
                             f"{seen[1]} of batch {seen[0]} in {seen[2].rsplit(': ', 1)[-1]}")
        return exported

    def parse(self, row: dict[str, str], where: str) -> dict:
        """Validate one assignment; returns its version, consent, answers, times and attention failures."""
        study = self.study
        for col in ("HITId", "AssignmentId", "WorkerId"):
            if not (row.get(col) or "").strip():
                raise StudyError(f"{where}: column {col!r} is empty")
        hidden, chosen = self._choices(answer_fields(row, where), where)
        sid = row.get("Input.study") or hidden.get("study")
        if sid and sid != study.id:
            raise StudyError(f"{where}: belongs to study {sid!r}, not {study.id!r}")
        version_raw = row.get("Input.version") or hidden.get("version") or ""
        if not version_raw.isdigit() or int(version_raw) >= len(study.versions):
            raise StudyError(f"{where}: version {version_raw!r} is not a version of study {study.id!r}")
        version = int(version_raw)
        seq = study.versions[version]
        for n, item_id in enumerate(seq, start=1):
            for label, given in (("Input", row.get(f"Input.q{n}_item")), ("Answer", hidden.get(f"q{n}_item"))):
                if given and given != item_id:
                    raise StudyError(f"{where}: {label}.q{n}_item {given!r} is an unknown item for question {n} "
                                     f"of version {version}")
        self._batch_row(row, hidden, version, where)
        times = dict(accept=parse_time(row["AcceptTime"], f"{where}: column 'AcceptTime'"),
                     submit=parse_time(row["SubmitTime"], f"{where}: column 'SubmitTime'"))
        for group, values in chosen.items():
            m = _Q.match(group)
            if m and int(m.group(1)) > len(seq) and values:
                raise StudyError(f"{where}: answer {next(iter(values.values()))} is for an unknown item "
                                 f"(version {version} has {len(seq)} questions)")
            if len(values) > 1:
                what = "consent" if group == "consent" else f"question {group}"
                raise StudyError(f"{where}: {what} has several answers {sorted(values)}")
        if "consent" in chosen and "agree" not in chosen["consent"]:
            return dict(version=version, consented=False, **times)
        answers = []
        for n, item_id in enumerate(seq, start=1):
            answered = chosen.get(f"q{n}")
            if not answered:
                raise StudyError(f"{where}: question q{n} has no answer")
            answers.append((n - 1, item_id, next(iter(answered))))
        key = study.key
        failures = sum(1 for _, item_id, value in answers
                       if key[item_id]["kind"] == "attention" and value != key[item_id]["expected"])
        return dict(version=version, consented=True, answers=answers, failures=failures, **times)


def import_mturk(study: StudyFolder, store: Store, results: str | Path, *, include_rejected: bool = False) -> ImportReport:
    """Import every assignment of the results CSV in one transaction (all or nothing)."""
    results = Path(results)
    reader = _Reader(study, results)
    _, rows = read_results(results, reader.table)
    report = ImportReport()
    max_fail = study.manifest["attention"]["max_failures"]
    codes = study.manifest["codes"]
    earlier = [p for p in store.participants_of(study.id) if p["platform"] == "mturk"]
    before = {p["platform_study_id"]: p["version"] for p in earlier}
    imported = {p["platform_session_id"] for p in earlier}     # by AssignmentId, whatever id scheme made them
    parsed = []
    for i, row in enumerate(rows):
        where = f"{results}: row {i + 2}"            # row 1 is the header
        if (row.get("AssignmentStatus") or "").strip().lower() == "rejected" and not include_rejected:
            report.rejected_skipped += 1
            continue
        p = reader.parse(row, where)
        hit = row["HITId"].strip()
        if hit in before and before[hit] != p["version"]:
            raise StudyError(f"{where}: HIT {hit!r} is version {p['version']} here but version {before[hit]} "
                             "in an earlier import")
        parsed.append((row, p))
    key = mturk_batch.secret(study)
    workers: set[str] = set()
    answers: list[dict] = []
    with store.transaction() as conn:
        for row, p in parsed:
            assignment = row["AssignmentId"].strip()
            if not p["consented"]:
                refusal = mturk_batch.keyed(study, "refusal", assignment, key)[:32]
                if store.insert_refusal(conn, study.id, "mturk", p["submit"], refusal):
                    report.refused += 1
                else:
                    report.already_present += 1
                continue
            workers.add(row["WorkerId"])
            pid = "mt-" + mturk_batch.keyed(study, "participant", assignment, key)[:16]
            screened = p["failures"] > max_fail
            if assignment in imported or not store.insert_participant(conn, dict(
                participant_id=pid, study_id=study.id, token=mturk_batch.keyed(study, "token", assignment, key)[:32],
                platform="mturk", worker_id=row["WorkerId"], platform_study_id=row["HITId"].strip(),
                platform_session_id=assignment, version=p["version"],
                status="screened_out" if screened else "finished", created_at=p["accept"], started_at=p["accept"],
                finished_at=p["submit"], completion_code=codes["screen_out" if screened else "completion"],
                attention_failures=p["failures"], attention_passed=0 if screened else 1, flags="")):
                report.already_present += 1           # imported before (or by a concurrent import)
                continue
            imported.add(assignment)
            report.screened_out += screened
            answers.extend(dict(study_id=study.id, participant_id=pid, item_id=item_id, position=position,
                                answer=value, response_ms=None, answered_at=p["submit"])
                           for position, item_id, value in p["answers"])
            report.imported += 1
        store.insert_answers(conn, answers)
        # a worker seen in several assignments (in this file or before) is flagged on all of them
        for worker in sorted(workers):
            rows_of = store.participants_of_worker(conn, study.id, "mturk", worker)
            if len(rows_of) < 2:
                continue
            report.duplicate_workers.append(worker)
            for r in rows_of:
                flags = set(filter(None, r.flags.split(",")))
                if "duplicate_worker" not in flags:
                    store.update_participant(conn, r.participant_id, flags=",".join(sorted(flags | {"duplicate_worker"})))
    return report
