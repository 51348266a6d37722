"""The question kinds built on the atlas `predictions` section (prototype–query similarity,
HIVE distinction and agreement) end to end: build from the demo atlases, MTurk export and
import in the crowd-radio-group shape, 30 simulated participants with a known effect, and
`analyze` recovering its direction with the declared primary first."""
from __future__ import annotations

import contextlib
import json
import re

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
from servers import CHROMIUM, app_server, chromium
from test_study_kinds_analysed import _results

TARGET, BASELINE = "FocalSecret", "PlainSecret"


@pytest.fixture(scope="session")
def demo_atlases(demo_atlas_paths):
    paths = demo_atlas_paths
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


@pytest.fixture(scope="module")
def distinction_study(demo_atlases, tmp_path_factory):
    return new_kind_study(tmp_path_factory.mktemp("distinction"), demo_atlases, "hive_distinction")


@pytest.fixture(scope="module")
def agreement_study(demo_atlases, tmp_path_factory):
    return new_kind_study(tmp_path_factory.mktemp("agreement"), demo_atlases, "hive_agreement")


STUDIES = ["similarity_study", "distinction_study", "agreement_study"]


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


def test_distinction_panels_are_hidden_balanced_and_the_key_records_the_models_correctness(distinction_study):
    study = open_study(distinction_study)
    assert [o["value"] for o in study.options] == ["A", "B", "C", "D"]
    info = [v for v in study.key.values() if v["kind"] == "hive_distinction"]
    assert {v["answer"] for v in info} <= {"A", "B", "C", "D"} and len({v["answer"] for v in info}) >= 3
    assert {v["model_correct"] for v in info} == {True, False}
    item = next(i for i, v in study.key.items() if v["kind"] == "hive_distinction")
    assert len(study.items[item]["media"]) == 2 and "chose" in study.items[item]["question"]


def test_distinction_recovers_the_effect_with_the_logistic_mixed_model_first(distinction_study, tmp_path):
    path = _simulated_answers(distinction_study, tmp_path, {TARGET: 1.2})
    res = analyze(path, AnalysisOptions(target=TARGET, agreement_resamples=0))
    assert res.analysed == ["hive_distinction"]
    first = res.primary.iloc[0]
    assert first["study"] == "hive_distinction" and first["analysis"] == "clmm"
    assert first["estimate"] > 1 and bool(first["reject"])     # odds ratio of a right pick
    t = res.kind_tables["hive_distinction"]
    levels = t["levels"].set_index("method")["estimate"]
    assert levels[TARGET] > levels[BASELINE] > 0                # both above chance 1/4 (offset)
    assert set(t["by_prediction"]["prediction"]) == {"correct", "incorrect"}
    from study.analysis.sentence import primary_sentence
    assert primary_sentence(res).startswith(f"With {TARGET}'s explanations participants picked the right panel more")


def test_agreement_question_names_the_predicted_class_and_recovers_the_interaction(agreement_study, tmp_path):
    study = open_study(agreement_study)
    assert [o["value"] for o in study.options] == ["1", "2", "3", "4"]
    info = {i: v for i, v in study.key.items() if v["kind"] == "hive_agreement"}
    assert {v["model_correct"] for v in info.values()} == {True, False}
    some = next(iter(info))
    assert info[some]["class_name"] in study.items[some]["question"]
    path = _simulated_answers(agreement_study, tmp_path, {TARGET: 1.2})
    res = analyze(path, AnalysisOptions(target=TARGET, agreement_resamples=0, scale=(1, 2, 3, 4)))
    first = res.primary.iloc[0]
    assert first["study"] == "hive_agreement" and first["analysis"] == "clmm"
    assert first["estimate"] > 0 and bool(first["reject"])     # gap[target] - gap[baseline]
    gaps = res.kind_tables["hive_agreement"]["gaps"].set_index("method")["estimate"]
    assert gaps[TARGET] > gaps[BASELINE] > 0                    # right predictions get more confidence


@pytest.mark.parametrize("which, extra", [("distinction_study", []), ("agreement_study", ["--scale-points", "4"])])
def test_report_files_have_the_kinds_own_section(which, extra, request, tmp_path):
    from study.analysis.cli import main as analyze_main
    study_dir = request.getfixturevalue(which)
    kind = open_study(study_dir).kind
    path = _simulated_answers(study_dir, tmp_path, {TARGET: 1.2})
    out = tmp_path / "report"
    assert analyze_main([path, "--target", TARGET, "--out", str(out), "--no-png", *extra]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary[kind]["target"] == TARGET and summary[kind]["mixed_model"]["role"] == "primary"
    assert summary["primary"]["results"][0]["study"] == kind and "agreement" in summary
    assert (out / "primary.tex").exists() and (out / "tables" / f"{kind}_mixed.csv").exists()
    assert "HIVE" in (out / "report.html").read_text()


def test_distinction_spec_fields_are_validated(tmp_path, demo_atlases):
    from study.errors import StudyError
    with pytest.raises(StudyError, match="field 'panels'"):
        new_kind_study(tmp_path, demo_atlases, "hive_distinction", panels=1)
    with pytest.raises(StudyError, match="field 'pick'"):
        new_kind_study(tmp_path, demo_atlases, "hive_distinction", pick="truth")
    with pytest.raises(StudyError, match="only hive_distinction"):
        new_kind_study(tmp_path, demo_atlases, "hive_agreement", panels=3)
    from study.spec import load_spec
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"kind": "hive_distinction", "methods": [str(demo_atlases[0])], "panels": 3,
                                    "pick": "correct"}))
    loaded = load_spec(spec)
    assert list(loaded.wording["choices"]) == ["A", "B", "C"] and "correct answer" in loaded.wording["question"]
    assert "one time in 3" in loaded.wording["instructions"]


def test_prereg_and_power_of_the_new_kinds(demo_atlases, tmp_path):
    import importlib

    from study.analysis.prereg import build_prereg
    for name in ("similarity", "hive_distinction", "hive_agreement"):
        analysis = REGISTRY[name].analysis()
        module, _, fn = analysis.power_simulation.rpartition(".")
        assert callable(getattr(importlib.import_module(module), fn))
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(yaml.safe_dump({"kind": name, "methods": [
            {"atlas": str(demo_atlases[0]), "label": TARGET}, {"atlas": str(demo_atlases[1]), "label": BASELINE}],
            "analysis": {"target": TARGET}}))
        doc = build_prereg(spec)
        assert doc["primary"]["description"] == analysis.model_text("clmm")
        assert doc["hypotheses"] and all(TARGET in h and BASELINE in h for h in doc["hypotheses"])
        assert ("random_effects" in doc["primary"]) == (name == "similarity")   # the ratings CLMM's structures


# --- the participant page in headless Chromium: two participants per kind, one server ------------

@pytest.fixture(scope="module")
def served(demo_atlases, tmp_path_factory):
    """`python -m app` on a workspace holding one study of each new kind (built from the demo
    atlases), and a headless Chromium."""
    import app_helpers

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    base = tmp_path_factory.mktemp("served")
    home = app_helpers.workspace(base / "ws")
    for kind in KINDS_NEW:
        new_kind_study(base, demo_atlases, kind, id=f"new-{kind.replace('_', '-')}", pool_size=4,
                       items_per_version=2)
        (base / "studies" / kind).rename(home / "studies" / f"new-{kind.replace('_', '-')}")
    with serve_workspace(home, base) as served:
        yield served


@contextlib.contextmanager
def serve_workspace(home, base):
    """`python -m app` on the workspace `home` (log under `base`) and a headless Chromium:
    yields (url, home, browser)."""
    with app_server(home, base / "server.log", env={"PROTOPROTO_PASSWORD": "not-used-here-1"}) as url, \
            chromium() as browser:
        yield url, home, browser


KINDS_NEW = ("similarity", "hive_distinction", "hive_agreement")


@pytest.mark.parametrize("kind", KINDS_NEW)
def test_two_participants_answer_in_chromium(kind, served, artifacts_dir):
    url, home, browser = served
    answer_two_participants(url, home, browser, f"new-{kind.replace('_', '-')}", kind, artifacts_dir)


def answer_two_participants(url, home, browser, sid: str, kind: str, artifacts_dir) -> None:
    """Two participants answer study `sid` of the served workspace by clicking (the instructed
    answer on attention checks, rotating labels otherwise); both are stored in full."""
    from study.store import open_store
    from test_e2e_browser import _button, _settled

    folder = home / "studies" / sid
    study = json.loads((folder / "study.json").read_text())
    versions = json.loads((folder / "versions.json").read_text())["versions"]
    items = json.loads((folder / "items.json").read_text())
    key = json.loads((folder / "private" / "key.json").read_text())
    labels = [o["label"] for o in study["options"]]
    for who in range(2):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{url}?study={sid}")
        _button(page, study["wording"]["consent_button"]).wait_for()
        _settled(page)
        _button(page, study["wording"]["consent_button"]).click()
        _settled(page)
        _button(page, study["wording"]["next_button"]).click()
        total = len(versions[who % len(versions)])
        for n in range(1, total + 1):
            page.get_by_text(f"Question {n} of {total}").wait_for()
            _settled(page)
            item = items[versions[who % len(versions)][n - 1]]
            page.wait_for_function("n => { const m = [...document.images].filter(i => i.src.includes('/media/'));"
                                   " return m.length >= n && m.every(i => i.complete && i.naturalWidth > 0); }",
                                   arg=len(item["media"]))
            if who == 0 and n == 1:
                page.screenshot(path=str(artifacts_dir / f"app_question_{kind}.png"), full_page=True)
            html = page.content().lower()
            assert not [t for t in key["private_terms"] if t.lower() in html]
            question = page.locator("strong").filter(has_text=re.compile(r"\?|select")).first.inner_text()
            instructed = re.search(r'select "([^"]+)"', question)
            _button(page, instructed.group(1) if instructed else labels[(n + who) % len(labels)]).click()
        page.get_by_text(study["codes"]["completion"]).wait_for()
        context.close()
    store = open_store(None, folder)
    try:
        rows = store.export_rows(sid)
    finally:
        store.close()
    assert len({r["participant_id"] for r in rows}) == 2
    assert len(rows) == sum(len(versions[w % len(versions)]) for w in range(2))
