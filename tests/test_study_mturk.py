"""Mechanical Turk batch export (layout, input CSV, HTMLQuestion, hosting check) and results import."""
from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import re
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from study.build import build_study
from study.cli import main as study_main
from study.errors import StudyError
from study.export import answer_rows
from study.folder import open_study
from study.platforms.mturk_export import MAX_QUESTION_BYTES, check_hosted, export_mturk, layout_vars
from study.platforms.mturk_import import FIXED, import_mturk, parse_time
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
    assert layout.count("<crowd-radio-group>") == n_q
    assert layout.count('<crowd-radio-button name="q1.') == 3   # A / B / undecided
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


def results_csv(study, exported: Path, shape: str, *, extra_rows=(), mutate=None) -> str:
    """A results CSV as MTurk writes it, answers in the given shape."""
    inputs = read_csv(exported / "input.csv")
    key = study.key
    rows = []
    workers = ["W1", "W2", "W3", "W4", "W1"]            # W1 takes two HITs
    for n, worker in enumerate(workers):
        v = n % len(inputs)
        row = {"HITId": f"H{v}", "AssignmentId": f"A{n}", "WorkerId": worker,
               "AssignmentStatus": "Approved" if n != 2 else "Rejected",
               "AcceptTime": "Sat Nov 21 10:00:00 PST 2026", "SubmitTime": "Sat Nov 21 10:07:30 PST 2026",
               "WorkTimeInSeconds": "450"}
        row.update({f"Input.{k}": val for k, val in inputs[v].items()})
        answers = {}
        for q, item_id in enumerate(study.versions[v], start=1):
            info = key[item_id]
            answers[q] = info.get("expected") or ("A" if info.get("left_source") == "data_dependent" else "B")
        if shape == "json":
            obj = {f"q{q}.{val}": {"on": val == a} for q, a in answers.items() for val in study.option_values}
            row["Answer.taskAnswers"] = json.dumps([obj])
        elif shape == "flat":
            for q, a in answers.items():
                for val in study.option_values:
                    row[f"Answer.q{q}.{val}.on"] = "true" if val == a else "false"
        elif shape == "label":
            labels = {o["value"]: o["label"] for o in study.options}
            for q, a in answers.items():
                row[f"Answer.q{q}.label"] = labels[a]
        else:
            for q, a in answers.items():
                row[f"Answer.q{q}"] = a
        if mutate:
            mutate(n, row)
        rows.append(row)
    header = list(FIXED) + sorted({k for r in rows for k in r} - set(FIXED))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


@pytest.mark.parametrize("shape", ["json", "flat", "label", "plain"])
def test_import_all_answer_shapes(cons_study, exported, tmp_path, shape):
    study = open_study(cons_study)
    path = tmp_path / "results.csv"
    path.write_text(results_csv(study, exported, shape))
    store = open_store(str(tmp_path / "a.sqlite"))
    store.register_study(study.id, study.fingerprint)
    report = import_mturk(study, store, path)
    assert (report.imported, report.rejected_skipped, report.duplicate_workers) == (4, 1, ["W1"])
    people = store.participants_of(study.id)
    assert sorted(p["worker_id"] for p in people) == ["W1", "W1", "W2", "W4"]
    assert all(("duplicate_worker" in p["flags"]) == (p["worker_id"] == "W1") for p in people)
    assert all(p["status"] == "finished" and p["started_at"] == "2026-11-21T18:00:00.000Z" for p in people)
    rows = answer_rows(study, store)
    assert len(rows) == 4 * len(study.versions[0])
    cons = [r for r in rows if r["kind"] == "consistency"]
    assert {r["choice_source"] for r in cons} == {"data_dependent"}
    assert {r["attention_passed"] for r in rows if r["kind"] == "attention"} == {"1"}
    assert {r["platform"] for r in rows} == {"mturk"} and {r["answered_at"] for r in rows} == {"2026-11-21T18:07:30.000Z"}
    again = import_mturk(study, store, path)                       # re-import is harmless
    assert (again.imported, again.already_present) == (0, 4)
    assert len(answer_rows(study, store)) == len(rows)


def _mutated(study, exported, tmp_path, mutate) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(results_csv(study, exported, "flat", mutate=mutate))
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda n, r: n == 3 and r.update({"Answer.q2.A.on": "true", "Answer.q2.B.on": "true"}), r"row 5: question q2 has several answers"),
    (lambda n, r: n == 1 and r.update({"Input.q3_item": "ffffffffffff"}), r"row 3: Input.q3_item 'ffffffffffff' is an unknown item"),
    (lambda n, r: n == 4 and r.update({"Answer.q99.A.on": "true"}), r"row 6: answer 'Answer.q99.A.on' is for an unknown item"),
    (lambda n, r: n == 0 and r.update({"Answer.q1.Z.on": "true"}), r"row 2: question q1: answer 'Z' is out of range"),
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


def test_import_cli_is_one_transaction_and_flags(cons_study, exported, tmp_path, capsys):
    study = open_study(cons_study)
    path = tmp_path / "r.csv"
    path.write_text(results_csv(study, exported, "plain"))
    db = str(tmp_path / "cli.sqlite")
    assert study_main(["import-mturk", str(cons_study), str(path), "--db", db, "--include-rejected"]) == 0
    out = capsys.readouterr().out
    assert "imported 5 assignments" in out and "W1" in out
    bad = tmp_path / "missing.csv"
    bad.write_text("HITId,AssignmentId\nH,A\n")
    assert study_main(["import-mturk", str(cons_study), str(bad), "--db", db]) == 1
    assert "column 'WorkerId' missing" in capsys.readouterr().err


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
    bad = _mutated(study, exported, tmp_path, lambda n, r: n == 4 and r.update({"Answer.q1.Z.on": "true"}))
    with pytest.raises(StudyError, match=r"row 6: question q1: answer 'Z' is out of range"):
        import_mturk(study, store, bad)
    assert store.participants_of(study.id) == []
    good = tmp_path / "good.csv"
    good.write_text(results_csv(study, exported, "json"))
    assert import_mturk(study, store, good).imported == 4
    assert len(answer_rows(study, store)) == 4 * len(study.versions[0])


def test_worker_flagged_across_separate_batches(cons_study, exported, tmp_path):
    study = open_study(cons_study)
    lines = results_csv(study, exported, "flat").splitlines(keepends=True)
    first, second = tmp_path / "b1.csv", tmp_path / "b2.csv"
    first.write_text(lines[0] + lines[1] + lines[2])     # W1 (A0), W2 (A1)
    second.write_text(lines[0] + lines[5])               # W1 again (A4), weeks later
    store = open_store(str(tmp_path / "a.sqlite"))
    store.register_study(study.id, study.fingerprint)
    assert import_mturk(study, store, first).duplicate_workers == []
    assert import_mturk(study, store, second).duplicate_workers == ["W1"]
    flags = {p["platform_session_id"]: p["flags"] for p in store.participants_of(study.id)}
    assert flags == {"A0": "duplicate_worker", "A1": "", "A4": "duplicate_worker"}
