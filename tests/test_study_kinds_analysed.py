"""likert and pairwise end to end: build from atlases, MTurk export/import in the
crowd-radio-group shape, 30 simulated participants with a known effect, and `analyze`
recovering its direction with the declared primary first."""
from __future__ import annotations

import csv
import io
import json

import pytest

from study.analysis.exclusions import ExclusionRules
from study.analysis.pipeline import AnalysisOptions, analyze
from study.build import build_study
from study.errors import StudyError
from study.export import answer_rows, export_answers
from study.folder import open_study
from study.kinds import KINDS, REGISTRY
from study.platforms.mturk_export import export_mturk
from study.platforms.mturk_import import FIXED, import_mturk
from study.session import StudyRunner
from study.simulate_cli import simulate
from study.store import open_store
from study_helpers import make_saliency_setup

TARGET = "ProtoPoolSecret"


def _study(tmp_path_factory, kind: str, **extra):
    tmp = tmp_path_factory.mktemp(kind)
    spec = make_saliency_setup(tmp, datasets=("birds",), n_images=30, size=64, kind=kind, pool_size=10,
                               items_per_version=4, versions=2, attention={"count": 1, "max_failures": 0},
                               **extra)
    return build_study(spec, tmp / "studies" / kind)


@pytest.fixture(scope="module")
def likert_study(tmp_path_factory):
    return _study(tmp_path_factory, "likert",
                  wording={"question": "How much do you agree that the map marks a real part?",
                           "scale": {"points": 7, "labels": {"1": "not at all", "7": "fully"}}})


@pytest.fixture(scope="module")
def pairwise_study(tmp_path_factory):
    return _study(tmp_path_factory, "pairwise")


def _simulated_answers(study_dir, tmp_path, effects) -> str:
    db = tmp_path / "sim.sqlite"
    simulate(study_dir, 30, str(db), effects=effects, seed=3)
    study = open_study(study_dir)
    out = tmp_path / "answers.csv"
    store = open_store(str(db))
    export_answers(study, store, out)
    store.close()
    return str(out)


def test_registry_lists_every_kind_once_and_each_declares_an_analysis():
    assert KINDS[:4] == ("saliency", "consistency", "likert", "pairwise") and len(set(KINDS)) == len(KINDS)
    for kind in REGISTRY.values():
        a = kind.analysis()
        assert set(a.primaries) == {"clmm", "participant", "answer"} and a.secondaries


def test_likert_has_its_own_wording_and_scale(likert_study):
    study = open_study(likert_study)
    assert [o["value"] for o in study.options] == [str(i) for i in range(1, 8)]
    assert study.options[-1]["label"] == "7 (fully)"
    assert "real part" in next(i for i in study.items.values() if "expected" not in study.key.get(
        next(k for k, v in study.items.items() if v is i), {}))["question"]


def test_likert_recovers_the_effect_with_the_clmm_first(likert_study, tmp_path):
    path = _simulated_answers(likert_study, tmp_path, {TARGET: 1.0})
    res = analyze(path, AnalysisOptions(target=TARGET, agreement_resamples=0, scale=tuple(range(1, 8))))
    assert res.rating_kind == "likert" and res.analysed == ["likert"]
    first = res.primary.iloc[0]
    assert first["study"] == "likert" and first["analysis"] == "clmm"
    assert (res.primary["estimate"] > 1).all() and res.primary["reject"].all()   # odds ratios above 1
    wil = res.participant["wilcoxon"]
    assert (wil[wil["family"] == "pooled"]["mean_difference"] > 0).all()
    assert res.agreement["answers"].iloc[0] == "likert ratings"
    from study.analysis.sentence import primary_sentence
    assert primary_sentence(res).startswith(f"Participants rated {TARGET} higher than")


def test_likert_report_files(likert_study, tmp_path):
    from study.analysis.cli import main as analyze_main
    path = _simulated_answers(likert_study, tmp_path, {TARGET: 1.0})
    out = tmp_path / "report"
    assert analyze_main([path, "--target", TARGET, "--out", str(out), "--no-png", "--scale-points", "7"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["likert"]["target"] == TARGET and summary["saliency"] is None
    assert summary["primary"]["results"][0]["study"] == "likert"
    assert "higher than" in summary["primary"]["sentence"]
    assert (out / "primary.tex").exists() and "likert" in (out / "report.html").read_text()


def test_pairwise_recovers_the_effect_with_the_logistic_mixed_model_first(pairwise_study, tmp_path):
    path = _simulated_answers(pairwise_study, tmp_path, {TARGET: 1.2})
    res = analyze(path, AnalysisOptions(target=TARGET, agreement_resamples=0))
    assert res.analysed == ["pairwise"]
    prim = res.primary
    assert list(prim["study"].unique()) == ["pairwise"] and prim["analysis"].iloc[0] == "clmm"
    assert len(prim) == 2 and (prim["estimate"] > 0.5).all() and prim["reject"].all()
    assert prim["unit"].iloc[0].startswith("answer in participant × item")
    bt = res.pairwise["bradley_terry"]                    # three methods: every method's worth
    assert bt.iloc[0]["method"] == TARGET and (bt.iloc[1:]["log_worth"] < 0).all()
    assert bt["worth"].sum() == pytest.approx(1.0) and (bt.iloc[0]["worth"] > bt.iloc[1:]["worth"]).all()
    part = res.pairwise["participant"]
    assert (part["mean_share"] > 0.5).all()
    from study.analysis.sentence import primary_sentence
    assert primary_sentence(res).startswith(f"Participants chose {TARGET} over")
    # no effect: the same analysis does not claim one in the wrong direction
    (tmp_path / "null").mkdir()
    null = analyze(_simulated_answers(pairwise_study, tmp_path / "null", {}),
                   AnalysisOptions(target=TARGET, agreement_resamples=0, mixed=False, primary="answer"))
    assert not null.primary["reject"].any()


def test_pairwise_report_files(pairwise_study, tmp_path):
    from study.analysis.cli import main as analyze_main
    path = _simulated_answers(pairwise_study, tmp_path, {TARGET: 1.2})
    out = tmp_path / "report"
    assert analyze_main([path, "--target", TARGET, "--out", str(out), "--no-png"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairwise"]["target"] == TARGET and summary["pairwise"]["bradley_terry"]
    assert summary["primary"]["results"][0]["study"] == "pairwise"
    assert (out / "primary.tex").exists() and (out / "tables" / "pairwise_bradley_terry.csv").exists()
    assert "Bradley-Terry worth" in (out / "report.html").read_text()


def test_unknown_kind_in_answers_is_one_line_naming_row_and_kinds(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("participant_id,item_id,kind,answer\np1,i1,saliency,3\np1,i2,hive,3\n")
    with pytest.raises(StudyError) as err:
        analyze(str(path), AnalysisOptions(rules=ExclusionRules(attention=False, unfinished=False,
                                                               duplicate_workers="keep")))
    msg = str(err.value)
    assert "\n" not in msg and "row 2" in msg and "'hive'" in msg and "likert" in msg and "pairwise" in msg


# --- MTurk: crowd-radio-group answers (taskAnswers JSON) come back unblinded ---------------

def _results(study, batch) -> str:
    with open(batch / "input.csv", newline="", encoding="utf-8") as fh:
        inputs = list(csv.DictReader(fh))
    rows = []
    for n, worker in enumerate(("W1", "W2")):
        v = n % len(inputs)
        row = {"HITId": f"H{inputs[v]['batch'][:4]}{v}", "AssignmentId": f"A{n}", "WorkerId": worker,
               "AssignmentStatus": "Approved", "AcceptTime": "Sat Nov 21 10:00:00 PST 2026",
               "SubmitTime": "Sat Nov 21 10:07:30 PST 2026", "WorkTimeInSeconds": "450"}
        row.update({f"Input.{k}": val for k, val in inputs[v].items()})
        obj = {k: inputs[v][k] for k in ("study", "version", "batch")}
        groups = {"consent": ("agree", ["agree", "decline"])}
        for q, item_id in enumerate(study.versions[v], start=1):
            obj[f"q{q}_item"] = inputs[v][f"q{q}_item"]
            info = study.key[item_id]
            groups[f"q{q}"] = (info.get("expected") or study.option_values[0], study.option_values)
        for g, (chosen, options) in groups.items():
            for value in options:               # <crowd-radio-group>: {name: {value: checked}}
                obj[f"{g}.{value}"] = {value: value == chosen}
        row["Answer.taskAnswers"] = json.dumps([obj])
        rows.append(row)
    header = list(FIXED) + sorted({k for r in rows for k in r} - set(FIXED))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


@pytest.mark.parametrize("which", ["likert_study", "pairwise_study"])
def test_mturk_export_and_import_in_the_crowd_radio_group_shape(which, request, tmp_path):
    study = open_study(request.getfixturevalue(which))
    batch = export_mturk(study, "https://media.example.org/s/", tmp_path / "batch")
    layout = (batch / "layout.html").read_text()
    assert "<crowd-radio-group>" in layout
    results = tmp_path / "results.csv"
    results.write_text(_results(study, batch))
    store = StudyRunner(study, open_store(str(tmp_path / "m.sqlite"))).store   # registers the study
    report = import_mturk(study, store, results)
    assert report.imported == 2
    rows = [r for r in answer_rows(study, store) if r["kind"] != "attention"]
    kind = REGISTRY[study.kind]
    assert rows and {r["kind"] for r in rows} == {study.kind} and {r["platform"] for r in rows} == {"mturk"}
    if kind.method_column:
        assert all(r["method"] for r in rows)
    else:                                   # pairwise: the chosen method, unblinded
        assert all(r["choice_source"] in (r["left_source"], r["right_source"]) for r in rows)
    store.close()


@pytest.mark.parametrize("kind", ["likert", "pairwise"])
def test_prereg_states_the_kinds_own_primary_and_hypotheses(kind, tmp_path):
    from study.analysis.prereg import build_prereg
    spec = make_saliency_setup(tmp_path, datasets=("birds",), n_images=12, size=48, kind=kind, pool_size=4,
                               items_per_version=2, versions=2, analysis={"target": TARGET})
    doc = build_prereg(spec)
    models = next(q["answer"] for s in doc["sections"] for q in s["questions"] if q["id"] == "statistical_models")
    if kind == "likert":
        assert "cumulative link mixed model" in doc["primary"]["description"] and "random_effects" in doc["primary"]
        assert doc["hypotheses"][0].startswith(f"Explanations of {TARGET} are rated higher")
    else:
        assert doc["primary"]["description"].startswith("logistic mixed model of the share")
        assert "Bradley-Terry" in models and "more often than" in doc["hypotheses"][0]


def test_pairwise_power_grows_with_the_effect_and_holds_alpha_without_one():
    from study.analysis.power import simulate_power_pairwise
    kw = dict(choices_per_participant=8, sims=800, seed=1, item_sd=0.0)
    null = simulate_power_pairwise(30, 0.0, **kw)
    weak = simulate_power_pairwise(30, 0.3, **kw)
    strong = simulate_power_pairwise(30, 0.8, **kw)
    assert null < 0.08 and null < weak < strong and strong > 0.8
    for kind in REGISTRY.values():      # every kind names the function that plans its power
        module, _, name = kind.analysis().power_simulation.rpartition(".")
        import importlib
        assert callable(getattr(importlib.import_module(module), name))
