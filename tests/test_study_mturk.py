"""Mechanical Turk batch export (layout, input CSV, HTMLQuestion, hosting check) and results import."""
from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import io
import json
import os
import re
import stat
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from study.build import build_study
from study.cli import main as study_main
from study.errors import StudyError
from study.export import answer_rows
from study.folder import open_study
from study.platforms import mturk_batch
from study.platforms.mturk_export import (MAX_QUESTION_BYTES, STATUS, check_hosted, export_mturk, layout_fields,
                                          layout_vars)
from study.platforms.mturk_import import FIXED, answer_table, import_mturk, parse_time
from study.store import open_store
from study_helpers import make_consistency_setup, make_saliency_setup
from study_pg import pg_server, pg_url  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def cons_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mt")
    spec = make_consistency_setup(tmp, attention={"count": 1, "max_failures": 0})
    return build_study(spec, tmp / "studies" / "mt-cons")


@pytest.fixture(scope="module")
def exported(cons_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("mtx") / "batch"
    assert study_main(["export-mturk", str(cons_study), "--base-url", "https://media.example.org/s1/",
                       "--out", str(out)]) == 0
    assert study_main(["export-mturk", str(cons_study), "--base-url", "https://media.example.org/s1/",
                       "--out", str(out)]) == 1             # never overwrites a batch
    return out


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_export_layout_matches_input_csv(cons_study, exported):
    study = open_study(cons_study)
    layout = (exported / "layout.html").read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", layout))
    rows = read_csv(exported / "input.csv")
    assert len(rows) == len(study.versions) == 4
    assert list(rows[0]) == layout_vars(study) and placeholders == set(rows[0])
    assert "<crowd-form" in layout and "crowd-html-elements.js" in layout
    assert "event.preventDefault()" in layout            # every question required before submit
    n_q = len(study.versions[0])
    assert layout.count("<crowd-radio-group>") == n_q + 1            # consent + one per question
    assert layout.count('<crowd-radio-button name="q1.') == 3   # A / B / undecided
    assert '<crowd-radio-button name="q1.A" value="A">' in layout
    assert 'name="consent.decline"' in layout and "Please return this HIT" in layout
    assert '<input type="hidden" name="batch" value="${batch}">' in layout
    # the batch's rows are recorded in the study's private folder, exactly as uploaded
    (batch,) = {row["batch"] for row in rows}
    record = json.loads((cons_study / "private" / "mturk" / f"batch-{batch}.json").read_text())
    assert [h["input"] for h in record["hits"]] == rows and record["study_id"] == study.id
    guide = (exported / "GUIDE.md").read_text()
    assert STATUS in guide and "source: the Amazon Mechanical Turk documentation" in guide and "2026" in guide
    for v, row in enumerate(rows):
        assert row["version"] == str(v)
        assert [row[f"q{q}_item"] for q in range(1, n_q + 1)] == study.versions[v]
        assert all(row[f"q{q}_img1"].startswith("https://media.example.org/s1/") for q in range(1, n_q + 1))
    media = sorted(p.name for p in (exported / "media").iterdir())
    assert media == sorted({Path(m).name for i in study.items.values() for m in i["media"]})


def test_htmlquestion_xml_is_valid_and_small(cons_study, exported):
    files = sorted((exported / "hits").iterdir())
    assert len(files) == 4
    for f in files:
        doc = f.read_bytes()
        assert len(doc) <= MAX_QUESTION_BYTES
        root = ET.fromstring(doc)
        assert root.tag.endswith("HTMLQuestion")
        content = root.find("{*}HTMLContent").text
        assert "<crowd-form" in content and "${" not in content


def test_64kb_limit_is_enforced(tmp_path):
    spec = make_saliency_setup(tmp_path, n_images=34, datasets=("birds",), pool_size=34, items_per_version=34,
                               versions=1, size=48)                       # 102 questions of ~690 bytes
    study = open_study(build_study(spec, tmp_path / "big"))
    with pytest.raises(StudyError, match=r"version 0: HTMLQuestion is \d+ bytes, over MTurk's 64 KB limit"):
        export_mturk(study, "https://x.org/m/", tmp_path / "bigbatch")
    assert not (tmp_path / "bigbatch").exists()


def test_hosting_checker_against_local_http_server(cons_study, tmp_path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/media/"
        out = export_mturk(open_study(cons_study), base, tmp_path / "site")
        assert study_main(["check-mturk", str(out)]) == 0
        victims = sorted((out / "media").iterdir())
        victims[0].unlink()
        victims[1].write_bytes(b"tampered")
        problems = dict(check_hosted(out, timeout=5))
        assert problems == {base + victims[0].name: "HTTP 404", base + victims[1].name: "content differs from the exported file"}
        assert study_main(["check-mturk", str(out)]) == 1
    finally:
        server.shutdown()
        server.server_close()



# --- results in every shape crowd-html-elements (and plain forms) can produce ------------------

def _answer_cells(study, shape: str, answers: dict[int, str], hidden: dict[str, str], consent: str = "agree") -> dict:
    """The `Answer.*` cells of one assignment in `shape`."""
    values = study.option_values
    labels = {o["value"]: o["label"] for o in study.options}
    groups = {"consent": ("agree" if consent == "agree" else "decline", ["agree", "decline"])}
    groups.update({f"q{q}": (a, values) for q, a in answers.items()})
    if shape in ("group-json", "on-json", "nested-json"):
        obj = dict(hidden)
        for g, (chosen, options) in groups.items():
            for v in options:
                if shape == "group-json":            # documented: {name: {value: checked}}
                    obj[f"{g}.{v}"] = {v: v == chosen}
                elif shape == "on-json":              # a button without a value attribute
                    obj[f"{g}.{v}"] = {"on": v == chosen}
                else:
                    obj.setdefault(g, {})[v] = {"on": v == chosen}
        return {"Answer.taskAnswers": json.dumps([obj])}
    cells = {f"Answer.{k}": v for k, v in hidden.items()}
    for g, (chosen, options) in groups.items():
        if shape == "group-flat":                     # answer-format="flatten-objects" of the same
            cells.update({f"Answer.{g}.{v}.{v}": "true" if v == chosen else "false" for v in options})
        elif shape == "on-flat":
            cells.update({f"Answer.{g}.{v}.on": "true" if v == chosen else "false" for v in options})
        elif shape == "checkbox":                      # plain checkboxes: only the checked one, "on"
            cells[f"Answer.{g}.{chosen}"] = "on"
        elif shape == "label":
            cells[f"Answer.{g}.label"] = labels.get(chosen, chosen)
        elif shape == "value":
            cells[f"Answer.{g}.value"] = chosen
        else:                                         # plain <input type="radio" name="q1" value="3">
            cells[f"Answer.{g}"] = chosen
    return cells


SHAPES = ["group-json", "group-flat", "on-json", "on-flat", "nested-json", "checkbox", "label", "value", "plain"]


def results_csv(study, exported: Path, shape: str, *, mutate=None, workers=("W1", "W2", "W3", "W4", "W1"),
                consent=lambda n: "agree") -> str:
    """A results CSV as MTurk writes it (one row per assignment), answers in `shape`."""
    inputs = read_csv(exported / "input.csv")
    key = study.key
    rows = []
    for n, worker in enumerate(workers):            # W1 takes two HITs
        v = n % len(inputs)
        row = {"HITId": f"H{inputs[v]['batch'][:4]}{v}", "AssignmentId": f"A{n}", "WorkerId": worker,
               "AssignmentStatus": "Approved" if n != 2 else "Rejected",
               "AcceptTime": "Sat Nov 21 10:00:00 PST 2026", "SubmitTime": "Sat Nov 21 10:07:30 PST 2026",
               "WorkTimeInSeconds": "450"}
        row.update({f"Input.{k}": val for k, val in inputs[v].items()})
        answers = {}
        for q, item_id in enumerate(study.versions[v], start=1):
            info = key[item_id]
            answers[q] = info.get("expected") or ("A" if info.get("left_source") == "data_dependent" else "B")
        hidden = {k: inputs[v][k] for k in ("study", "version", "batch")}
        hidden.update({f"q{q}_item": inputs[v][f"q{q}_item"] for q in answers})
        row.update(_answer_cells(study, shape, answers, hidden, consent(n)))
        if mutate:
            mutate(n, row)
        rows.append(row)
    header = list(FIXED) + sorted({k for r in rows for k in r} - set(FIXED))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


REPO = Path(__file__).resolve().parent.parent


def study_cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m study ...` as a researcher runs it, from another folder."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "study", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_answer_table_comes_from_the_layout(cons_study):
    study = open_study(cons_study)
    table = answer_table(study)
    for f in layout_fields(study):                     # every radio button, in each shape
        assert {table[p].kind for p in (f"{f.name}.{f.value}", f"{f.name}.on", f.name)} == {"flag"}
        assert table[f.name].group == f.group and table[f.name].value == f.value
    assert table["q1.label"].kind == table["q1"].kind == "choice" and table["batch"].kind == "hidden"
    assert "q1.A.checked" not in table


@pytest.mark.parametrize("shape", SHAPES)
def test_every_answer_shape_imports_once_through_the_cli(cons_study, exported, tmp_path, shape):
    study = open_study(cons_study)
    path = tmp_path / "results.csv"
    path.write_text(results_csv(study, exported, shape))
    db = tmp_path / "a.sqlite"
    run = study_cli("import-mturk", cons_study, path, "--db", db, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "imported 4 assignments" in run.stdout and "skipped 1 rejected" in run.stdout and "W1" in run.stdout
    store = open_store(str(db))
    people = store.participants_of(study.id)
    assert sorted(p["worker_id"] for p in people) == ["W1", "W1", "W2", "W4"]
    assert all(("duplicate_worker" in p["flags"]) == (p["worker_id"] == "W1") for p in people)
    assert all(p["status"] == "finished" and p["started_at"] == "2026-11-21T18:00:00.000Z" for p in people)
    rows = answer_rows(study, store)
    assert len(rows) == 4 * len(study.versions[0])
    by_person = {}
    for r in rows:
        by_person.setdefault(r["participant_id"], []).append(r["item_id"])
    versions = {p["participant_id"]: p["version"] for p in people}
    assert all(items == study.versions[versions[pid]] for pid, items in by_person.items())   # once, in order
    cons = [r for r in rows if r["kind"] == "consistency"]
    assert cons and {r["choice_source"] for r in cons} == {"data_dependent"}      # unblinded correctly
    assert {r["attention_passed"] for r in rows if r["kind"] == "attention"} == {"1"}
    assert {r["platform"] for r in rows} == {"mturk"} and {r["answered_at"] for r in rows} == {"2026-11-21T18:07:30.000Z"}
    store.close()
    again = study_cli("import-mturk", cons_study, path, "--db", db, cwd=tmp_path)   # re-import is harmless
    assert again.returncode == 0 and "imported 0 assignments" in again.stdout and "4 already imported" in again.stdout
    store = open_store(str(db))
    assert len(answer_rows(study, store)) == len(rows)
    store.close()


@pytest.mark.parametrize("shape, mutate, message", [
    ("group-flat", lambda n, r: r.update({"Answer.q1.A.checked": "true"}),
     r"results.csv: column 'Answer.q1.A.checked' is not an answer shape of this study's exported layout"),
    ("group-json", lambda n, r: n == 3 and r.update({"Answer.taskAnswers": r["Answer.taskAnswers"].replace(
        '"q2.A": {"A"', '"q2.A": {"Z"')}),
     r"results.csv: row 5: Answer.taskAnswers field 'q2.A.Z' is not an answer shape"),
    ("on-flat", lambda n, r: n == 1 and r.update({"Answer.q2.A.on": "maybe"}),
     r"row 3: column 'Answer.q2.A.on' must be true or false \(got 'maybe'\)"),
])
def test_unknown_shape_is_one_error_naming_the_column(cons_study, exported, tmp_path, shape, mutate, message):
    study = open_study(cons_study)
    path = tmp_path / "results.csv"
    path.write_text(results_csv(study, exported, shape, mutate=mutate))
    db = tmp_path / "a.sqlite"
    run = study_cli("import-mturk", cons_study, path, "--db", db, cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    store = open_store(str(db))
    assert store.participants_of(study.id) == []
    store.close()


def _mutated(study, exported, tmp_path, mutate, shape="on-flat") -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(results_csv(study, exported, shape, mutate=mutate))
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda n, r: n == 3 and r.update({"Answer.q2.A.on": "true", "Answer.q2.B.on": "true"}), r"row 5: question q2 has several answers"),
    (lambda n, r: n == 1 and r.update({"Input.q3_item": "ffffffffffff"}), r"row 3: Input.q3_item 'ffffffffffff' is an unknown item"),
    (lambda n, r: n == 4 and r.update({"Answer.q1": "Z"}), r"row 6: question q1: answer 'Z' is out of range"),
    (lambda n, r: n == 1 and r.update({"Answer.q4.A.on": "false", "Answer.q4.B.on": "false", "Answer.q4.undecided.on": "false"}), r"row 3: question q4 has no answer"),
    (lambda n, r: n == 1 and r.update({"Input.version": "9"}), r"row 3: version '9' is not a version"),
    (lambda n, r: n == 3 and r.update({"SubmitTime": "yesterday"}), r"row 5: column 'SubmitTime': not a time"),
])
def test_import_errors_name_the_row_and_write_nothing(cons_study, exported, tmp_path, mutate, message):
    study = open_study(cons_study)
    store = open_store(str(tmp_path / "a.sqlite"))
    store.register_study(study.id, study.fingerprint)
    with pytest.raises(StudyError, match=message):
        import_mturk(study, store, _mutated(study, exported, tmp_path, mutate))
    assert store.participants_of(study.id) == [] and answer_rows(study, store) == []


@pytest.mark.parametrize("mutate, message", [
    # results of a batch this study never exported (another export, or a hand-made HIT)
    (lambda n, r: n == 3 and r.update({"Input.batch": "0123456789abcdef", "Answer.batch": "0123456789abcdef"}),
     r"row 5: HIT 'H\w+' is not a HIT of an exported batch of study 'mt-cons' \(batch '0123456789abcdef'"),
    (lambda n, r: n == 0 and r.pop("Input.batch") and r.pop("Answer.batch"),
     r"row 2: HIT 'H\w+' is not a HIT of an exported batch"),
    # a HIT made from an edited row (here: another image address)
    (lambda n, r: n == 1 and r.update({"Input.q1_img1": "https://elsewhere.example.org/x.png"}),
     r"row 3: HIT 'H\w+' is not in batch \w+: column 'Input.q1_img1' differs from the exported row"),
    # one HIT id carrying two different versions
    (lambda n, r: n == 4 and r.update({"HITId": "Hsame"}) or n == 1 and r.update({"HITId": "Hsame"}),
     r"row 6: HIT 'Hsame' is version 0 of batch \w+ here but version 1 of batch \w+ in row 3"),
])
def test_hits_outside_the_exported_batch_are_refused(cons_study, exported, tmp_path, mutate, message):
    study = open_study(cons_study)
    path = _mutated(study, exported, tmp_path, mutate)
    run = study_cli("import-mturk", cons_study, path, "--db", tmp_path / "a.sqlite", cwd=tmp_path)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    store = open_store(str(tmp_path / "a.sqlite"))
    assert store.participants_of(study.id) == []
    store.close()


def test_question_texts_may_come_back_re_encoded(cons_study, exported, tmp_path):
    study = open_study(cons_study)
    path = _mutated(study, exported, tmp_path, lambda n, r: r.update({"Input.q1_text": r["Input.q1_text"] + " "}))
    store = open_store(str(tmp_path / "a.sqlite"))
    store.register_study(study.id, study.fingerprint)
    assert import_mturk(study, store, path).imported == 4


def test_a_second_export_is_a_second_accepted_batch(cons_study, exported, tmp_path):
    study = open_study(cons_study)
    second = export_mturk(study, "https://media.example.org/s1/", tmp_path / "batch2")
    store = open_store(str(tmp_path / "a.sqlite"))
    store.register_study(study.id, study.fingerprint)
    first = tmp_path / "r1.csv"
    first.write_text(results_csv(study, exported, "group-flat"))
    later = tmp_path / "r2.csv"
    later.write_text(results_csv(study, second, "group-flat", workers=("W7", "W8")).replace(",A0,", ",B0,")
                     .replace(",A1,", ",B1,"))
    assert import_mturk(study, store, first).imported == 4
    assert import_mturk(study, store, later).imported == 2
    assert len(store.participants_of(study.id)) == 6


def test_tokens_are_keyed_and_stable(cons_study, exported, tmp_path):
    study = open_study(cons_study)
    path = tmp_path / "r.csv"
    path.write_text(results_csv(study, exported, "plain"))
    store_a, store_b = open_store(str(tmp_path / "a.sqlite")), open_store(str(tmp_path / "b.sqlite"))
    for store in (store_a, store_b):
        store.register_study(study.id, study.fingerprint)
        import_mturk(study, store, path)
    people = {p["platform_session_id"]: p for p in store_a.participants_of(study.id)}
    again = {p["platform_session_id"]: (p["participant_id"], p["token"]) for p in store_b.participants_of(study.id)}
    assert {a: (p["participant_id"], p["token"]) for a, p in people.items()} == again     # same on every import
    secret_file = cons_study / "private" / "mturk" / "secret.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600 and len(bytes.fromhex(secret_file.read_text())) == 32
    for assignment, p in people.items():
        # not the old unkeyed hash of study id + AssignmentId, and the token is not the (exported) participant id
        legacy = hashlib.sha256(f"{study.id}\0{assignment}".encode()).hexdigest()
        assert legacy[:14] not in p["participant_id"] and legacy[:14] not in p["token"]
        assert p["token"] != p["participant_id"] and p["token"][:8] not in p["participant_id"]
        assert len(p["token"]) == 32 and p["participant_id"].startswith("mt-")
    assert mturk_batch.keyed(study, "token", "A0")[:32] == people["A0"]["token"]


def test_assignments_imported_under_the_old_id_scheme_are_not_imported_again(cons_study, exported, tmp_path):
    study = open_study(cons_study)
    path = tmp_path / "r.csv"
    path.write_text(results_csv(study, exported, "plain"))
    store = open_store(str(tmp_path / "a.sqlite"))
    store.register_study(study.id, study.fingerprint)
    legacy = "mt-" + hashlib.sha256(f"{study.id}\0A0".encode()).hexdigest()[:14]
    with store.transaction() as conn:                 # what the importer used to write
        store.insert_participant(conn, dict(
            participant_id=legacy, study_id=study.id, token=legacy, platform="mturk", worker_id="W1",
            platform_study_id="Hold", platform_session_id="A0", version=0, status="finished",
            created_at="2026-11-21T18:00:00.000Z", attention_failures=0, flags=""))
    report = import_mturk(study, store, path)
    assert (report.imported, report.already_present) == (3, 1)
    assert sorted(p["platform_session_id"] for p in store.participants_of(study.id)) == ["A0", "A1", "A3", "A4"]


def test_no_consent_assignment_stores_only_a_refusal(cons_study, exported, tmp_path):
    study = open_study(cons_study)
    path = tmp_path / "r.csv"
    path.write_text(results_csv(study, exported, "group-json", consent=lambda n: "decline" if n == 1 else "agree"))
    db = tmp_path / "a.sqlite"
    run = study_cli("import-mturk", cons_study, path, "--db", db, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "imported 3 assignments" in run.stdout and "1 did not consent" in run.stdout
    store = open_store(str(db))
    assert "A1" not in {p["platform_session_id"] for p in store.participants_of(study.id)}
    assert "W2" not in {p["worker_id"] for p in store.participants_of(study.id)}
    assert store.refusal_counts(study.id) == {"mturk": 1}
    store.close()
    again = study_cli("import-mturk", cons_study, path, "--db", db, cwd=tmp_path)
    assert again.returncode == 0 and "imported 0 assignments" in again.stdout
    store = open_store(str(db))
    assert store.refusal_counts(study.id) == {"mturk": 1}          # counted once
    store.close()


def test_import_cli_refuses_a_file_that_is_not_mturk_results(cons_study, tmp_path):
    bad = tmp_path / "missing.csv"
    bad.write_text("HITId,AssignmentId\nH,A\n")
    run = study_cli("import-mturk", cons_study, bad, "--db", tmp_path / "cli.sqlite", cwd=tmp_path)
    assert run.returncode == 1 and "column 'WorkerId' missing" in run.stderr and "Traceback" not in run.stderr


def test_parse_time():
    assert parse_time("Sat Nov 21 10:00:00 PDT 2026", "x") == "2026-11-21T17:00:00.000Z"
    assert parse_time("2026-11-21T10:00:00Z", "x") == "2026-11-21T10:00:00.000Z"
    with pytest.raises(StudyError, match="x: not a time"):
        parse_time("Sat Nov 21 10:00:00 XYZ 2026", "x")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_import_rolls_back_on_any_backend(cons_study, exported, tmp_path, request, backend):
    """A bad last row leaves no trace of the good rows before it (one transaction)."""
    study = open_study(cons_study)
    url = str(tmp_path / "a.sqlite") if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = open_store(url)
    store.register_study(study.id, study.fingerprint)
    bad = _mutated(study, exported, tmp_path, lambda n, r: n == 4 and r.update({"Answer.q1": "Z"}))
    with pytest.raises(StudyError, match=r"row 6: question q1: answer 'Z' is out of range"):
        import_mturk(study, store, bad)
    assert store.participants_of(study.id) == []
    good = tmp_path / "good.csv"
    good.write_text(results_csv(study, exported, "group-json"))
    assert import_mturk(study, store, good).imported == 4
    assert len(answer_rows(study, store)) == 4 * len(study.versions[0])


def test_worker_flagged_across_separate_batches(cons_study, exported, tmp_path):
    study = open_study(cons_study)
    lines = results_csv(study, exported, "group-flat").splitlines(keepends=True)
    first, second = tmp_path / "b1.csv", tmp_path / "b2.csv"
    first.write_text(lines[0] + lines[1] + lines[2])     # W1 (A0), W2 (A1)
    second.write_text(lines[0] + lines[5])               # W1 again (A4), weeks later
    store = open_store(str(tmp_path / "a.sqlite"))
    store.register_study(study.id, study.fingerprint)
    assert import_mturk(study, store, first).duplicate_workers == []
    assert import_mturk(study, store, second).duplicate_workers == ["W1"]
    flags = {p["platform_session_id"]: p["flags"] for p in store.participants_of(study.id)}
    assert flags == {"A0": "duplicate_worker", "A1": "", "A4": "duplicate_worker"}


def _left_behind(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".sqlite" in p.name or p.name.endswith(".writer-lock"))


@pytest.mark.parametrize("sep, name", [(";", "semicolons (;)"), ("\t", "tabs")])
def test_a_results_file_with_another_separator_is_named_and_leaves_nothing(cons_study, exported, tmp_path,
                                                                            sep, name):
    study = open_study(cons_study)
    rows = list(csv.reader(io.StringIO(results_csv(study, exported, "plain"))))
    path = tmp_path / "results.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=sep).writerows(rows)           # as a spreadsheet saves it in many locales
    before = _left_behind(cons_study)
    for db in (["--db", tmp_path / "a.sqlite"], []):              # a given file, and the study's own
        run = study_cli("import-mturk", cons_study, path, *db, cwd=tmp_path)
        assert run.returncode == 1 and "Traceback" not in run.stderr
        assert run.stderr.strip().splitlines() == [
            f"error: {path}: the columns are separated by {name}, not commas; save it as a comma-separated "
            f"CSV (UTF-8) and run again"]
        assert _left_behind(tmp_path) == [] and _left_behind(cons_study) == before


def test_a_failed_import_removes_the_store_it_created_but_keeps_an_existing_one(cons_study, exported, tmp_path):
    """A row refused after the store was opened (a bad SubmitTime in the last row): the
    import is all or nothing, and a store this command created is removed with its lock file."""
    study = open_study(cons_study)

    def bad_time(n, row):
        if n == 4:
            row["SubmitTime"] = "yesterday"
    path = tmp_path / "results.csv"
    path.write_text(results_csv(study, exported, "plain", mutate=bad_time))
    run = study_cli("import-mturk", cons_study, path, "--db", tmp_path / "new.sqlite", cwd=tmp_path)
    assert run.returncode == 1 and "row 6" in run.stderr and "not a time" in run.stderr
    assert _left_behind(tmp_path) == []
    # an existing store (the app may be using it) stays, with what it held and its lock file
    good = tmp_path / "good.csv"
    good.write_text(results_csv(study, exported, "plain", workers=("W7",)))
    assert study_cli("import-mturk", cons_study, good, "--db", tmp_path / "kept.sqlite", cwd=tmp_path).returncode == 0
    held = _left_behind(tmp_path)
    assert "kept.sqlite" in held and "kept.sqlite.writer-lock" in held
    run = study_cli("import-mturk", cons_study, path, "--db", tmp_path / "kept.sqlite", cwd=tmp_path)
    assert run.returncode == 1 and _left_behind(tmp_path) == held
    store = open_store(str(tmp_path / "kept.sqlite"))
    assert [p["worker_id"] for p in store.participants_of(study.id)] == ["W7"]
    store.close()
