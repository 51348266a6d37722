"""Reading and validating answers: one clear error naming row and column."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.analysis.exclusions import ExclusionRules
from study.analysis.io import Needs, load_answers, read_answers_csv
from study.analysis.pipeline import AnalysisOptions, analyze
from study.analysis.synthetic import synthetic_answers
from study.errors import StudyError


@pytest.fixture(scope="module")
def answers() -> pd.DataFrame:
    return synthetic_answers(6, consistency_versions=2, seed=1)


def _write(df: pd.DataFrame, path):
    df.to_csv(path, index=False)
    return path


def test_csv_roundtrip_types_and_row_index(answers, tmp_path):
    t = load_answers(_write(answers, tmp_path / "a.csv"), Needs(response_ms=True))
    assert len(t) == len(answers)
    sal = answers["kind"] == "saliency"
    assert (t.loc[sal.to_numpy(), "score"].to_numpy() == answers.loc[sal, "answer"].astype(int)).all()
    assert (t.loc[~sal.to_numpy(), "score"] == 0).all()
    assert t["response_ms"].to_numpy() == pytest.approx(answers["response_ms"].to_numpy())
    assert set(t["attention_passed"].unique()) <= {-1, 0, 1}
    assert isinstance(t["method"].dtype, pd.CategoricalDtype)
    # answered_at (costly) is only read when asked for
    assert "answered_at" not in read_answers_csv(tmp_path / "a.csv").columns
    assert "answered_at" in read_answers_csv(tmp_path / "a.csv", Needs(answered_at=True)).columns
    # response_ms is read (and checked) even with the fast-responder rule off
    assert load_answers(tmp_path / "a.csv")["response_ms"].to_numpy() == pytest.approx(answers["response_ms"].to_numpy())


def test_dataframe_and_csv_give_the_same_table(answers, tmp_path):
    a = load_answers(answers)
    b = load_answers(_write(answers, tmp_path / "a.csv"))
    for col in ("score", "version", "attention_passed", "finished"):
        assert (a[col].to_numpy() == b[col].to_numpy()).all()
    assert (a["method"].astype(str).to_numpy() == b["method"].astype(str).to_numpy()).all()


def test_score_outside_scale_names_row_line_and_column(answers, tmp_path):
    bad = answers.copy()
    idx = int(np.flatnonzero(bad["kind"] == "saliency")[7])
    bad.loc[idx, "answer"] = "7"
    with pytest.raises(StudyError) as exc:
        load_answers(_write(bad, tmp_path / "bad.csv"))
    msg = str(exc.value)
    assert f"row {idx + 1} (line {idx + 2})" in msg and "'answer'" in msg and "'7'" in msg
    assert "1..5" in msg and "\n" not in msg


@pytest.mark.parametrize("value", ["", "five", "3.5", "0"])
def test_non_rating_answers_rejected(answers, value):
    bad = answers.copy()
    bad.loc[0, "answer"] = value
    with pytest.raises(StudyError, match=r"row 1, column 'answer'"):
        load_answers(bad)


def test_missing_required_column(answers, tmp_path):
    with pytest.raises(StudyError, match="missing column 'kind'"):
        load_answers(_write(answers.drop(columns="kind"), tmp_path / "a.csv"))
    # the blinded export has no method column: saliency cannot be analysed
    with pytest.raises(StudyError, match="missing column 'method'.*unblinded"):
        load_answers(answers.drop(columns=["method"]))
    with pytest.raises(StudyError, match="missing column 'choice_source'"):
        load_answers(answers.drop(columns=["choice_source"]))


def test_missing_rule_column_names_the_flag(answers):
    with pytest.raises(StudyError, match="response_ms.*--min-median-ms"):
        load_answers(answers.drop(columns="response_ms"), Needs(response_ms=True))
    # not needed when the rule is off
    load_answers(answers.drop(columns="response_ms"))


def test_unknown_kind_and_bad_choice_and_empty_participant(answers):
    bad = answers.copy()
    bad.loc[3, "kind"] = "salience"
    with pytest.raises(StudyError, match=r"row 4, column 'kind': 'salience' is not a known kind"):
        load_answers(bad)
    bad = answers.copy()
    i = int(np.flatnonzero(bad["kind"] == "consistency")[0])
    bad.loc[i, "choice_source"] = "left"
    with pytest.raises(StudyError, match=rf"row {i + 1}, column 'choice_source'"):
        load_answers(bad)
    bad = answers.copy()
    bad.loc[5, "participant_id"] = ""
    with pytest.raises(StudyError, match=r"row 6, column 'participant_id': empty"):
        load_answers(bad)
    bad = answers.copy()
    bad.loc[2, "method"] = ""
    with pytest.raises(StudyError, match=r"row 3, column 'method'"):
        load_answers(bad)


def test_bad_attention_and_response_values(answers):
    bad = answers.copy()
    i = int(np.flatnonzero(bad["kind"] == "attention")[0])
    bad.loc[i, "attention_passed"] = "yes"
    with pytest.raises(StudyError, match=rf"row {i + 1}, column 'attention_passed'"):
        load_answers(bad)
    bad = answers.copy()
    bad["response_ms"] = bad["response_ms"].astype(object)
    bad.loc[9, "response_ms"] = "-5"
    with pytest.raises(StudyError, match=r"row 10, column 'response_ms'"):
        load_answers(bad)


def test_unknown_target_and_baseline_listed(answers):
    with pytest.raises(StudyError, match=r"--target 'ProtoNope' is not a method.*ProtoPool"):
        analyze(answers, AnalysisOptions(target="ProtoNope"))
    with pytest.raises(StudyError, match=r"baseline 'Nope' is not a method"):
        analyze(answers, AnalysisOptions(target="ProtoPool", baselines=("Nope",)))
    with pytest.raises(StudyError, match="--target"):
        analyze(answers, AnalysisOptions())


def test_unreadable_files(tmp_path):
    with pytest.raises(StudyError, match="not found"):
        load_answers(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(StudyError, match="empty file"):
        load_answers(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("participant_id,item_id,kind,answer\n")
    with pytest.raises(StudyError, match="no answers"):
        load_answers(tmp_path / "header.csv")
    (tmp_path / "ragged.csv").write_text("participant_id,item_id,kind,answer\np,i,saliency,3,9\n")
    with pytest.raises(StudyError, match="malformed CSV"):
        load_answers(tmp_path / "ragged.csv")


def test_minimal_foreign_csv_is_enough(tmp_path):
    """Answers from another tool need only the columns analysis reads."""
    rows = ["participant_id,item_id,kind,dataset,method,answer"]
    rng = np.random.default_rng(0)
    for p in range(8):
        for m, hi in (("Ours", 6), ("Theirs", 5)):
            for i in range(5):
                rows.append(f"p{p},{m}{i},saliency,cub,{m},{rng.integers(1, hi)}")
    path = tmp_path / "foreign.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(StudyError, match="'finished'.*--keep-unfinished"):
        analyze(path, AnalysisOptions(target="Ours"))
    rules = ExclusionRules(attention=False, unfinished=False, duplicate_workers="keep")
    res = analyze(path, AnalysisOptions(target="Ours", rules=rules))
    assert res.counts is not None and int(res.counts["n"].iloc[0]) == 40
