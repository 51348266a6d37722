"""A consistency study declaring three pair sources: built from atlases that carry a third
`pairs.<source>` list, answered by simulated participants through the real engine,
exported and analysed with `python -m study analyze --spec` (the spec's `sources`)."""
from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
import yaml

from study.build import build_study
from study.cli import main as study_main
from study.errors import StudyError
from study.folder import open_study
from study_helpers import make_consistency_setup

SOURCES3 = ["data_dependent", "euclidean", "cosine"]


def add_source(atlas_dir, name="cosine", n=22):
    """Give the atlas a further pair list: pairs neither other source holds, best first."""
    path = atlas_dir / "atlas.json"
    doc = json.loads(path.read_text())
    taken = {(p["a"], p["b"]) for s in ("data_dependent", "euclidean") for p in doc["pairs"][s]}
    ids = sorted(p["id"] for p in doc["prototypes"] if p["nearest"])
    free = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:] if (a, b) not in taken]
    doc["pairs"][name] = [{"a": a, "b": b, "score": 1.0 - k / 100} for k, (a, b) in enumerate(free[::7][:n])]
    path.write_text(json.dumps(doc))


def test_three_sources_build_simulate_export_analyze(tmp_path, monkeypatch, capsys):
    spec = make_consistency_setup(tmp_path, pool_size=6, items_per_version=3, versions=2,
                                  sources=SOURCES3)
    add_source(tmp_path / "atlases" / "atlas-share")
    study = open_study(build_study(spec, tmp_path / "studies" / "cons3"))
    questions = [i for i, k in study.key.items() if k["kind"] == "consistency"]
    comparisons = Counter(tuple(sorted((study.key[i]["left_source"], study.key[i]["right_source"])))
                          for i in questions)
    assert comparisons == {("data_dependent", "euclidean"): 6, ("cosine", "data_dependent"): 6,
                           ("cosine", "euclidean"): 6}
    for i in questions:   # a pair never faces itself
        assert study.key[i]["left_pair"] != study.key[i]["right_pair"]
    from app.views.analysis import declared_sources     # the app's Analysis page reads them
    assert declared_sources(study) == tuple(SOURCES3)
    per_version = [sum(study.key[i]["kind"] == "consistency" for i in seq) for seq in study.versions]
    assert per_version == [9, 9]                     # 3 per comparison per version
    monkeypatch.chdir(tmp_path)
    assert study_main(["simulate", "studies/cons3", "--participants", "12", "--db", "sim.sqlite",
                       "--seed", "2"]) == 0
    assert study_main(["export-answers", "studies/cons3", "--db", "sim.sqlite", "--out", "a.csv"]) == 0
    rows = pd.read_csv("a.csv", dtype=str, keep_default_na=False)
    con = rows[rows["kind"] == "consistency"]
    assert set(con["left_source"]) == set(SOURCES3)
    decided = con[con["choice_source"] != "undecided"]
    assert (decided["choice_source"] == decided["left_source"]).where(
        decided["answer"] == "A", decided["choice_source"] == decided["right_source"]).all()
    capsys.readouterr()
    assert study_main(["analyze", "a.csv", "--spec", "consistency.yaml", "--out", "report",
                       "--no-png", "--agreement-resamples", "0"]) == 0
    out = capsys.readouterr().out
    assert "3 pair sources (data_dependent, euclidean, cosine)" in out
    model = pd.read_csv("report/tables/consistency_model.csv")
    assert model.loc[0, "df"] == 2 and model.loc[0, "participants"] == 12


def test_a_declared_source_the_atlas_lacks_is_one_line(tmp_path):
    spec = make_consistency_setup(tmp_path, pool_size=6, items_per_version=3, versions=2,
                                  sources=SOURCES3)
    with pytest.raises(StudyError) as exc:
        build_study(spec, tmp_path / "studies" / "x")
    msg = str(exc.value)
    assert "\n" not in msg and "field 'sources'" in msg and "'cosine'" in msg
    assert not (tmp_path / "studies" / "x").exists()


def test_default_sources_keep_the_two_source_study(tmp_path):
    """`sources` left out or set to the default two builds byte-identical studies."""
    spec = make_consistency_setup(tmp_path, pool_size=6, items_per_version=3, versions=2)
    a = build_study(spec, tmp_path / "a" / "cons")
    data = yaml.safe_load(spec.read_text())
    data["sources"] = ["data_dependent", "euclidean"]
    spec.write_text(yaml.safe_dump(data))
    b = build_study(spec, tmp_path / "b" / "cons")
    for name in ("versions.json", "private/key.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_atlas_further_pair_sources_are_validated(tmp_path):
    from common.atlas import AtlasError, read_atlas
    from study_helpers import make_atlas

    root = tmp_path / "atlas"
    make_atlas(root, "atlas", "M", n_pairs=4, seed=1)
    add_source(root, "cosine", n=4)
    assert list(read_atlas(root).pairs) == ["data_dependent", "euclidean", "cosine"]
    doc = json.loads((root / "atlas.json").read_text())
    doc["pairs"]["Bad-Name"] = []
    (root / "atlas.json").write_text(json.dumps(doc))
    with pytest.raises(AtlasError, match="field 'pairs.Bad-Name'"):
        read_atlas(root)
    doc["pairs"].pop("Bad-Name")
    doc["pairs"]["cosine"][0]["a"], doc["pairs"]["cosine"][0]["b"] = 5, 2
    (root / "atlas.json").write_text(json.dumps(doc))
    with pytest.raises(AtlasError, match=r"pairs.cosine\[0\].a"):
        read_atlas(root)


def test_prereg_declares_the_sources_and_their_model(tmp_path):
    from study.analysis.pipeline import AnalysisOptions
    from study.analysis.prereg import build_prereg, check_against_prereg

    spec = make_consistency_setup(tmp_path, pool_size=6, items_per_version=3, versions=2,
                                  sources=SOURCES3)
    doc = build_prereg(spec)
    assert doc["primary"]["sources"] == SOURCES3
    assert "3 pair sources (data_dependent, euclidean, cosine)" in doc["hypotheses"][0]
    text = json.dumps(doc)
    assert "(0 + x_euclidean + x_cosine | participant) + (1 | pair)" in text
    path = tmp_path / "prereg.json"
    path.write_text(json.dumps(doc))
    same = check_against_prereg(path, AnalysisOptions(sources=tuple(SOURCES3)))
    assert not any("pair sources" in d for d in same["deviations"])
    other = check_against_prereg(path, AnalysisOptions(sources=tuple(SOURCES3[:2] + ["x"])))
    assert any("pair sources" in d for d in other["deviations"])
