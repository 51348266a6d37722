"""The question kinds built on the atlas `predictions` section (prototype–query similarity,
HIVE distinction and agreement) end to end: build from the demo atlases, MTurk export and
import in the crowd-radio-group shape, 30 simulated participants with a known effect, and
`analyze` recovering its direction with the declared primary first."""
from __future__ import annotations

import json

import pytest
import yaml

from study.analysis.pipeline import AnalysisOptions, analyze
from study.build import build_study
from study.export import answer_rows, export_answers
from study.folder import open_study
from study.kinds import REGISTRY
from study.platforms.mturk_export import export_mturk
from study.platforms.mturk_import import import_mturk
from study.session import StudyRunner
from study.simulate_cli import simulate
from study.store import open_store
from stimuli_helpers import build_demo_atlases
from test_study_kinds_analysed import _results

TARGET, BASELINE = "FocalSecret", "PlainSecret"


@pytest.fixture(scope="session")
def demo_atlases(tmp_path_factory):
    paths = build_demo_atlases(tmp_path_factory.mktemp("demo"))
    return [paths[k] for k in sorted(paths)]


def new_kind_study(base, atlases, kind: str, **extra):
    """A study of `kind` over the two demo atlases (labels TARGET, BASELINE)."""
    spec = {"kind": kind, "seed": 5,
            "methods": [{"atlas": str(atlases[0]), "label": TARGET}, {"atlas": str(atlases[1]), "label": BASELINE}],
            "pool_size": 6, "items_per_version": 4, "versions": 2, "attention": {"count": 1, "max_failures": 0}}
    spec.update(extra)
    path = base / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return build_study(path, base / "studies" / kind)


@pytest.fixture(scope="module")
def similarity_study(demo_atlases, tmp_path_factory):
    return new_kind_study(tmp_path_factory.mktemp("similarity"), demo_atlases, "similarity")


STUDIES = ["similarity_study"]


def _simulated_answers(study_dir, tmp_path, effects) -> str:
    db = tmp_path / "sim.sqlite"
    simulate(study_dir, 30, str(db), effects=effects, seed=3)
    out = tmp_path / "answers.csv"
    store = open_store(str(db))
    export_answers(open_study(study_dir), store, out)
    store.close()
    return str(out)


@pytest.mark.parametrize("which", STUDIES)
def test_build_is_blinded_and_has_attention_checks_with_their_own_pictures(which, request):
    study = open_study(request.getfixturevalue(which))
    kinds = {study.key[i]["kind"] for i in study.items}
    assert kinds == {study.kind, "attention"}
    public = json.dumps(study.items) + (study.root / "study.json").read_text()
    assert TARGET not in public and BASELINE not in public
    checks = [i for i in study.items if study.key[i]["kind"] == "attention"]
    questions = [i for i in study.items if i not in checks]
    shown = {m for i in questions for m in study.items[i]["media"]}
    assert checks and not shown & {m for i in checks for m in study.items[i]["media"]}


@pytest.mark.parametrize("which", STUDIES)
def test_mturk_export_and_import_in_the_crowd_radio_group_shape(which, request, tmp_path):
    study = open_study(request.getfixturevalue(which))
    batch = export_mturk(study, "https://media.example.org/s/", tmp_path / "batch")
    assert "<crowd-radio-group>" in (batch / "layout.html").read_text()
    results = tmp_path / "results.csv"
    results.write_text(_results(study, batch))
    store = StudyRunner(study, open_store(str(tmp_path / "m.sqlite"))).store
    assert import_mturk(study, store, results).imported == 2
    rows = [r for r in answer_rows(study, store) if r["kind"] != "attention"]
    assert rows and {r["kind"] for r in rows} == {study.kind} and {r["platform"] for r in rows} == {"mturk"}
    assert all(r["method"] in (TARGET, BASELINE) for r in rows)
    store.close()


def test_similarity_recovers_the_effect_with_the_clmm_first(similarity_study, tmp_path):
    path = _simulated_answers(similarity_study, tmp_path, {TARGET: 1.0})
    res = analyze(path, AnalysisOptions(target=TARGET, agreement_resamples=0))
    assert res.analysed == ["similarity"] and res.rating_kind == "similarity"
    first = res.primary.iloc[0]
    assert first["study"] == "similarity" and first["analysis"] == "clmm"
    assert first["estimate"] > 1 and bool(first["reject"])     # odds ratio of a higher rating
    wil = res.participant["wilcoxon"]
    assert (wil[wil["family"] == "pooled"]["mean_difference"] > 0).all()
    from study.analysis.sentence import primary_sentence
    assert primary_sentence(res).startswith(f"Participants rated {TARGET} higher than")
    assert REGISTRY["similarity"].analysis().power_simulation
