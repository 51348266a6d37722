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
