"""`python -m study simulate`: simulated participants through the real engine, in their own store."""
from __future__ import annotations

import pandas as pd

from study.build import build_study
from study.cli import main as study_main
from study.folder import open_study
from study_helpers import make_saliency_setup


def test_simulated_participants_answer_in_their_own_store(tmp_path, capsys, monkeypatch):
    spec = make_saliency_setup(tmp_path, datasets=("birds",), pool_size=6, items_per_version=2, versions=2,
                               attention={"count": 1, "max_failures": 0})
    out = build_study(spec, tmp_path / "studies" / "sal")
    monkeypatch.chdir(tmp_path)            # relative paths from another folder than the repository
    assert study_main(["simulate", "studies/sal", "--participants", "6", "--db", "sim.sqlite",
                       "--effect", "ProtoPoolSecret=1.5", "--seed", "3"]) == 0
    assert study_main(["export-answers", "studies/sal", "--db", "sim.sqlite", "--out", "answers.csv"]) == 0
    rows = pd.read_csv("answers.csv", dtype=str)
    assert rows["participant_id"].nunique() == 6 and set(rows["worker_id"]) == {f"sim-{i:04d}" for i in range(1, 7)}
    assert (rows.loc[rows["kind"] == "attention", "attention_passed"] == "1").all()
    assert set(rows["finished"]) == {"1"}
    assert len(rows) == 6 * (3 * 2 + 1)
    ratings = rows[rows["kind"] == "saliency"].assign(answer=lambda d: d["answer"].astype(int))
    means = ratings.groupby("method")["answer"].mean()
    assert means["ProtoPoolSecret"] > means.drop("ProtoPoolSecret").max()     # the effect shows
    assert not (out / "answers.sqlite").exists()                               # the study's own store untouched
    # never into the study's own store: one error line, nothing stored
    assert study_main(["simulate", "studies/sal", "--db", str(out / "answers.sqlite")]) == 1
    assert "never go into the study's own answer store" in capsys.readouterr().err
    assert not (out / "answers.sqlite").exists()
    assert open_study(out).id == "sal"


def test_saliency_only_commands_say_so_on_consistency_answers(tmp_path, capsys, monkeypatch):
    from study_helpers import make_consistency_setup

    spec = make_consistency_setup(tmp_path, pool_size=4, items_per_version=2, versions=2)
    build_study(spec, tmp_path / "studies" / "cons")
    monkeypatch.chdir(tmp_path)
    assert study_main(["simulate", "studies/cons", "--participants", "3", "--db", "sim.sqlite"]) == 0
    assert study_main(["export-answers", "studies/cons", "--db", "sim.sqlite", "--out", "cons.csv"]) == 0
    capsys.readouterr()
    assert study_main(["power", "--pilot", "cons.csv", "--target", "ShareSecret"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "power plans saliency studies" in err and "consistency" in err
    assert study_main(["analyze", "cons.csv", "--target", "ShareSecret", "--out", "report", "--no-png"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no saliency ratings" in err
    assert not (tmp_path / "report").exists()
