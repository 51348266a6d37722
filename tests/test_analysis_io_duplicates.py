"""Answers that would be analysed silently before: the same (participant, item) twice, and a
negative response time with the fast-responder rule off. Each is one line naming the rows."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study.analysis.io import Needs, load_answers
from study.analysis.synthetic import synthetic_answers
from study.errors import StudyError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def answers() -> pd.DataFrame:
    return synthetic_answers(6, consistency_versions=2, seed=3)


def test_a_duplicated_answer_row_is_refused_naming_both_rows(answers, tmp_path):
    doubled = pd.concat([answers, answers.iloc[[4, 9]]], ignore_index=True)
    path = tmp_path / "answers.csv"
    doubled.to_csv(path, index=False)
    n = len(answers)
    with pytest.raises(StudyError) as exc:
        load_answers(path)
    msg = str(exc.value)
    pid, item = answers.loc[4, "participant_id"], answers.loc[4, "item_id"]
    assert msg.startswith(f"{path} row {n + 1} (line {n + 2}): participant {pid!r} answered item {item!r} "
                          f"already in row 5 (line 6)")
    assert "2 duplicate (participant_id, item_id) rows in all" in msg and "\n" not in msg
    with pytest.raises(StudyError, match=f"answers row {n + 1}: participant"):
        load_answers(doubled)


def test_same_item_for_two_participants_is_fine(answers):
    assert len(load_answers(answers)) == len(answers)


def test_negative_response_time_is_refused_even_with_the_rule_off(answers, tmp_path):
    bad = answers.copy()
    bad["response_ms"] = bad["response_ms"].astype(object)
    bad.loc[7, "response_ms"] = "-250"
    path = tmp_path / "answers.csv"
    bad.to_csv(path, index=False)
    for needs in (Needs(), Needs(response_ms=True)):
        with pytest.raises(StudyError) as exc:
            load_answers(path, needs)
        msg = str(exc.value)
        assert msg.startswith(f"{path} row 8 (line 9), column 'response_ms': '-250'") and "\n" not in msg


def test_analyze_command_refuses_duplicates_from_another_folder(answers, tmp_path):
    path = tmp_path / "answers.csv"
    pd.concat([answers, answers.iloc[[0]]], ignore_index=True).to_csv(path, index=False)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "study", "analyze", str(path), "--out", "report"],
                          cwd=elsewhere, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "answered item" in proc.stderr and "duplicate (participant_id, item_id) row" in proc.stderr
    assert not (elsewhere / "report").exists()


@pytest.mark.parametrize("column, label", [("method", "method"), ("dataset", "data set")])
def test_an_item_whose_method_or_data_set_differs_between_rows_is_refused(answers, tmp_path, column, label):
    """A hand-merged file with one mislabelled row: one error naming both rows."""
    bad = answers.copy()
    sal = bad.index[bad["kind"] == "saliency"]
    item = bad.loc[sal[0], "item_id"]
    rows = bad.index[bad["item_id"] == item]
    other = next(v for v in bad.loc[sal, column].unique() if v != bad.loc[rows[0], column])
    bad.loc[rows[2], column] = other
    path = tmp_path / "answers.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(StudyError) as exc:
        load_answers(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path} row {rows[2] + 1} (line {rows[2] + 2}): item {item!r} has {label} "
                          f"{other!r} but {answers.loc[rows[0], column]!r} in row {rows[0] + 1} "
                          f"(line {rows[0] + 2}) (1 item with differing column {column!r}")
    assert "\n" not in msg
    with pytest.raises(StudyError, match=f"answers row {rows[2] + 1}: item {item!r} has {label}"):
        load_answers(bad)


def test_an_item_whose_pair_sources_differ_is_refused_sides_may_swap(answers, tmp_path):
    cons = answers.index[answers["kind"] == "consistency"]
    item = answers.loc[cons[0], "item_id"]
    rows = answers.index[answers["item_id"] == item]
    # the toolkit's sides are random per item; another tool may counterbalance them per person
    swapped = answers.copy()
    swapped.loc[rows[1], ["left_source", "right_source"]] = list(
        answers.loc[rows[1], ["right_source", "left_source"]])
    assert len(load_answers(swapped)) == len(answers)
    bad = answers.copy()
    bad.loc[rows[1], "right_source"] = bad.loc[rows[1], "left_source"]      # data_dependent twice
    path = tmp_path / "answers.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(StudyError) as exc:
        load_answers(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path} row {rows[1] + 1} (line {rows[1] + 2}): item {item!r} has pair sources")
    assert f"but 'data_dependent / euclidean' in row {rows[0] + 1}" in msg
    assert "differing the left/right sources" in msg and "\n" not in msg


def test_a_blinded_file_without_method_columns_is_still_read(answers):
    blinded = answers.drop(columns=["method", "left_source", "right_source", "choice_source"])
    blinded = blinded[blinded["kind"] == "attention"]
    assert len(load_answers(blinded)) == len(blinded)


@pytest.mark.parametrize("value, ok", [("86400000", True), ("86400001", False), ("1e20", False)])
def test_response_times_above_a_day_are_refused(answers, tmp_path, value, ok):
    bad = answers.copy()
    bad["response_ms"] = bad["response_ms"].astype(object)
    bad.loc[3, "response_ms"] = value
    path = tmp_path / "answers.csv"
    bad.to_csv(path, index=False)
    if ok:
        assert load_answers(path)["response_ms"].iloc[3] == 86_400_000
        return
    with pytest.raises(StudyError) as exc:
        load_answers(path, Needs())
    assert str(exc.value) == (f"{path} row 4 (line 5), column 'response_ms': {value!r} is not a response "
                              f"time in ms (a number from 0 to 86400000 = 24 h, or empty when unknown)")


def test_an_answers_file_separated_by_semicolons_says_so(answers, tmp_path):
    path = tmp_path / "answers.csv"
    answers.to_csv(path, index=False, sep=";")
    with pytest.raises(StudyError) as exc:
        load_answers(path)
    assert str(exc.value) == (f"{path}: the columns are separated by semicolons (;), not commas; save it as a "
                              f"comma-separated CSV (UTF-8) and run again")


@pytest.mark.parametrize("line, expected", [
    ("HITId,AssignmentId,WorkerId\r\n", None),
    ('"HITId";"AssignmentId";"WorkerId"\n', "semicolons (;)"),
    ("\ufeffHITId\tWorkerId\n", "tabs"),
    ("a;b|c|d\n", "vertical bars (|)"),          # no expected column: the separator that splits most
    ("something else\n", None),
])
def test_foreign_separator(line, expected):
    from common.csvsep import foreign_separator
    assert foreign_separator(line, ("HITId", "WorkerId")) == expected
