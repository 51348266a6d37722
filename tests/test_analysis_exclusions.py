"""Exclusion rules: each one on constructed participants, counted in order."""
from __future__ import annotations

import pandas as pd
import pytest

from study.analysis.exclusions import ExclusionRules, apply_exclusions
from study.analysis.io import load_answers
from study.analysis.synthetic import synthetic_answers
from study.errors import StudyError


def _participant(pid, worker, *, attention=("1",), finished="1", ms=4000, start="2026-01-01T10"):
    rows = []
    for i in range(4):
        rows.append(dict(participant_id=pid, worker_id=worker, item_id=f"s{i}", kind="saliency",
                         dataset="cub", method="A" if i % 2 else "B", answer=str(1 + i),
                         attention_passed="", response_ms=ms, finished=finished,
                         answered_at=f"{start}:00:0{i}Z"))
    for j, a in enumerate(attention):
        rows.append(dict(participant_id=pid, worker_id=worker, item_id=f"a{j}", kind="attention",
                         dataset="", method="", answer="5", attention_passed=a, response_ms=ms,
                         finished=finished, answered_at=f"{start}:00:1{j}Z"))
    return rows


@pytest.fixture
def table():
    rows = (_participant("good1", "W1") + _participant("good2", "W2")
            + _participant("inattentive", "W3", attention=("1", "0"))
            + _participant("two_fails", "W4", attention=("0", "0"))
            + _participant("quitter", "W5", finished="0")
            + _participant("speedy", "W6", ms=300)
            + _participant("dup_early", "W7", start="2026-01-01T09")
            + _participant("dup_late", "W7", start="2026-01-02T09")
            + _participant("no_worker", ""))
    return load_answers(pd.DataFrame(rows), ExclusionRules(
        min_median_response_ms=1000, duplicate_workers="first").needs())


def _kept(df):
    return set(df["participant_id"].astype(str).unique())


def test_each_rule_and_the_counts(table):
    rules = ExclusionRules(min_median_response_ms=1000)
    kept, report = apply_exclusions(table, rules)
    assert _kept(kept) == {"good1", "good2", "no_worker"}
    r = report.set_index("rule")
    assert r.loc["input", "participants_remaining"] == 9
    assert r.loc["failed_attention", "participants_excluded"] == 2
    assert r.loc["unfinished", "participants_excluded"] == 1
    assert r.loc["fast_responder", "participants_excluded"] == 1
    assert r.loc["duplicate_worker", "participants_flagged"] == 2
    assert r.loc["total", "participants_excluded"] == 6
    assert r.loc["total", "answers_removed"] == len(table) - len(kept)
    assert r.loc["total", "answers_remaining"] == len(kept)
    assert "1000 ms" in r.loc["fast_responder", "setting"]


def test_max_attention_failures_and_rules_off(table):
    kept, _ = apply_exclusions(table, ExclusionRules(max_attention_failures=1, unfinished=False,
                                                     duplicate_workers="keep"))
    assert "inattentive" in _kept(kept) and "two_fails" not in _kept(kept)
    assert {"quitter", "speedy", "dup_early", "dup_late"} <= _kept(kept)
    kept, report = apply_exclusions(table, ExclusionRules(attention=False, unfinished=False,
                                                          duplicate_workers="keep"))
    assert len(kept) == len(table) and report.iloc[-1]["participants_excluded"] == 0


def test_duplicate_worker_keep_first(table):
    kept, _ = apply_exclusions(table, ExclusionRules(attention=False, unfinished=False,
                                                     duplicate_workers="first"))
    assert "dup_early" in _kept(kept) and "dup_late" not in _kept(kept)
    assert "no_worker" in _kept(kept)  # an empty worker id is never a duplicate


def test_overlapping_rules_counted_once():
    df = synthetic_answers(60, attention_fail_rate=0.3, unfinished_rate=0.3, fast_rate=0.3,
                           duplicate_workers=5, seed=4)
    rules = ExclusionRules(min_median_response_ms=1000)
    kept, report = apply_exclusions(load_answers(df, rules.needs()), rules)
    body = report[~report["rule"].isin(["input", "total"])]
    assert body["participants_excluded"].sum() == report.iloc[-1]["participants_excluded"]
    assert (body["participants_flagged"] >= body["participants_excluded"]).all()
    assert body["participants_flagged"].sum() > body["participants_excluded"].sum()  # overlaps
    assert report.iloc[-1]["participants_remaining"] == kept["participant_id"].nunique()


def test_rules_from_mapping_validated():
    r = ExclusionRules.from_mapping({"min_median_response_ms": 800, "duplicate_workers": "first"})
    assert r.min_median_response_ms == 800.0 and r.duplicate_workers == "first"
    with pytest.raises(StudyError, match="unknown exclusion rule 'attn'"):
        ExclusionRules.from_mapping({"attn": True})
    with pytest.raises(StudyError, match="'attention' must be true or false"):
        ExclusionRules.from_mapping({"attention": "yes"})
    with pytest.raises(StudyError, match="duplicate_workers"):
        ExclusionRules(duplicate_workers="some")
    with pytest.raises(StudyError, match="min_median_response_ms"):
        ExclusionRules(min_median_response_ms=-1)
