"""Answers CSV (FORMATS.md §6), links for the app, and the no-torch rule of study/."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from study.build import build_study
from study.cli import main as study_main
from study.errors import StudyError
from study.export import BLINDED_DROP, COLUMNS
from study.platforms.local import open_link, parse_link, personal_link
from study.platforms.prolific import completion_url, study_url
from study.session import StudyRunner
from study_helpers import make_consistency_setup

ROOT = Path(__file__).resolve().parent.parent


def test_export_cli_unblinded_and_blinded(tmp_path, capsys):
    study_dir = build_study(make_consistency_setup(tmp_path, attention={"count": 1}), tmp_path / "studies" / "ex")
    runner = StudyRunner.open(study_dir)               # default store: STUDY/answers.sqlite
    key = runner.key
    finished = runner.start(platform="prolific", worker_id="PIDX", platform_study_id="S", platform_session_id="Z")
    while (item := runner.next_item(finished.participant_id)) is not None:
        info = key[item.item_id]
        answer = info.get("expected") or ("A" if info["left_source"] == "euclidean" else "undecided")
        runner.record_answer(finished.participant_id, item.item_id, answer, 1500)
    runner.finish(finished.participant_id)
    partial = runner.start()
    first = runner.next_item(partial.participant_id)
    runner.record_answer(partial.participant_id, first.item_id, "B", None)
    runner.store.close()

    out = tmp_path / "answers.csv"
    assert study_main(["export-answers", str(study_dir), "--out", str(out)]) == 0
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        assert reader.fieldnames == COLUMNS
    n_items = len(runner.study.versions[0])
    assert len(rows) == n_items + 1
    done = [r for r in rows if r["participant_id"] == finished.participant_id]
    assert [int(r["position"]) for r in done] == list(range(n_items))
    assert {r["finished"] for r in done} == {"1"} and {r["worker_id"] for r in done} == {"PIDX"}
    assert {r["platform"] for r in done} == {"prolific"} and {r["response_ms"] for r in done} == {"1500"}
    for r in done:
        if r["kind"] == "consistency":
            expected = "euclidean" if r["left_source"] == "euclidean" else "undecided"
            assert r["choice_source"] == expected and r["method"] == "" and r["dataset"] == "birds"
            assert {r["left_source"], r["right_source"]} == {"data_dependent", "euclidean"}
        else:
            assert r["kind"] == "attention" and r["attention_passed"] == "1" and r["choice_source"] == ""
    rest = [r for r in rows if r["participant_id"] == partial.participant_id]
    assert len(rest) == 1 and rest[0]["finished"] == "0" and rest[0]["response_ms"] == ""
    assert rest[0]["choice_source"] == rest[0]["right_source"]

    blind = tmp_path / "blind.csv"
    assert study_main(["export-answers", str(study_dir), "--out", str(blind), "--blinded"]) == 0
    with open(blind, newline="") as fh:
        reader = csv.DictReader(fh)
        brows = list(reader)
    assert reader.fieldnames == [c for c in COLUMNS if c not in BLINDED_DROP]
    assert [r["answer"] for r in brows] == [r["answer"] for r in rows]
    assert "euclidean" not in blind.read_text() and "data_dependent" not in blind.read_text()


def test_parse_link_shapes():
    local = parse_link({"study": "s1", "token": "abcDEF123_-x"})
    assert (local.platform, local.token, local.study_id) == ("local", "abcDEF123_-x", "s1")
    assert parse_link({"study": ["s1"]}).token is None                        # open link
    pro = parse_link({"study": "s1", "PROLIFIC_PID": "5f00aa", "STUDY_ID": "st9", "SESSION_ID": "se7"})
    assert (pro.platform, pro.worker_id, pro.platform_study_id, pro.platform_session_id) == ("prolific", "5f00aa", "st9", "se7")
    assert pro.start_kwargs()["worker_id"] == "5f00aa"
    for bad, msg in [({}, "'study' is missing"), ({"study": "../x"}, "not a study id"),
                     ({"study": "s1", "token": "<script>"}, "'token' is malformed"),
                     ({"study": "s1", "PROLIFIC_PID": "{{%PROLIFIC_PID%}}"}, "malformed")]:
        with pytest.raises(StudyError, match=msg):
            parse_link(bad)
    assert personal_link("https://h/app", "s1", "tok12345") == "https://h/app?study=s1&token=tok12345"
    assert open_link("https://h/app", "s1") == "https://h/app?study=s1"
    assert study_url("https://h/app", "s1") == ("https://h/app?study=s1&PROLIFIC_PID={{%PROLIFIC_PID%}}"
                                                "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}")
    assert completion_url("C123") == "https://app.prolific.com/submissions/complete?cc=C123"


def test_links_cli_personal_links_resume(tmp_path, capsys):
    study_dir = build_study(make_consistency_setup(tmp_path), tmp_path / "studies" / "lk")
    assert study_main(["links", str(study_dir), "--base-url", "https://h.example/app", "--invite", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "open link: https://h.example/app?study=lk"
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in lines[1]
    personal = [line for line in lines if "token=" in line]
    assert len(personal) == 3
    runner = StudyRunner.open(study_dir)
    links = [parse_link(dict(kv.split("=") for kv in url.split("?")[1].split("&"))) for url in personal]
    people = [runner.start(**link.start_kwargs()) for link in links]
    assert len({p.participant_id for p in people}) == 3 and sorted(p.version for p in people) == [0, 1, 2]
    assert runner.start(**links[1].start_kwargs()).participant_id == people[1].participant_id


def test_prolific_screen_out_redirects_with_screen_out_code(tmp_path):
    study_dir = build_study(make_consistency_setup(tmp_path, attention={"count": 1}), tmp_path / "studies" / "po")
    runner = StudyRunner.open(study_dir)
    p = runner.start(**parse_link({"study": "po", "PROLIFIC_PID": "abc123", "STUDY_ID": "s", "SESSION_ID": "t"}).start_kwargs())
    while (item := runner.next_item(p.participant_id)) is not None:
        info = runner.key[item.item_id]
        wrong = "A" if info.get("expected") == "B" else "B"
        result = runner.record_answer(p.participant_id, item.item_id, wrong if info["kind"] == "attention" else "A")
    assert result.screened_out
    done = runner.finish(p.participant_id)
    code = runner.study.manifest["codes"]["screen_out"]
    assert done.status == "screened_out" and done.redirect_url == completion_url(code)
    answered = {r["item_id"] for r in runner.store.export_rows(runner.study.id)}
    left = [i for i in runner.study.versions[p.version] if i not in answered]
    assert left, "this seed puts the attention check before the end"
    with pytest.raises(StudyError, match="already screened_out"):
        runner.record_answer(p.participant_id, left[0], "A")


def test_study_never_imports_torch():
    modules = ["study.spec", "study.atlas_reader", "study.select", "study.order", "study.media", "study.build",
               "study.build_cli", "study.store", "study.session", "study.export", "study.export_cli",
               "study.folder", "study.platforms.local", "study.platforms.prolific",
               "study.platforms.mturk_export", "study.platforms.mturk_export_cli",
               "study.platforms.mturk_check_cli", "study.platforms.mturk_import",
               "study.platforms.mturk_import_cli", "study.platforms.links_cli", "study.cli"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print('TORCH' if bad else 'CLEAN')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "CLEAN"
