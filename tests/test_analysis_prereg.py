"""Declared primary analysis and preregistration: `python -m study prereg`, and
`python -m study analyze --spec/--prereg` (run from another folder)."""
from __future__ import annotations

import json

import pytest
import yaml

from study.analysis.prereg import canonical_sha256
from study.cli import main as study_main
from study.analysis.synthetic import synthetic_answers
from study.errors import StudyError
from study.spec import load_spec

SPEC = {
    "id": "pilot-1", "kind": "saliency", "seed": 7,
    "methods": [{"atlas": "atlases/pool", "label": "ProtoPool"},
                {"atlas": "atlases/tree", "label": "ProtoTree"}],
    "attention": {"count": 1, "max_failures": 0},
    "analysis": {"primary": "clmm", "target": "ProtoPool", "alternative": "greater",
                 "alpha": 0.05,
                 "hypotheses": ["ProtoPool explanations are rated more salient than ProtoTree's."],
                 "power": {"power": 0.8, "participants": 12}},
}


@pytest.fixture()
def study(tmp_path, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    answers = tmp_path / "answers.csv"
    synthetic_answers(12, methods={"ProtoPool": 3.5, "ProtoTree": 3.0}, items_per_cell=5,
                      seed=3).to_csv(answers, index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return spec, answers, tmp_path


def test_prereg_writes_osf_sections_with_a_hash(study, capsys):
    spec, _, tmp = study
    assert study_main(["prereg", str(spec), "--out", str(tmp / "prereg")]) == 0
    doc = json.loads((tmp / "prereg" / "prereg.json").read_text())
    assert doc["template"] == "OSF Preregistration"
    assert [s["section"] for s in doc["sections"]] == [
        "Study information", "Design plan", "Sampling plan", "Variables", "Analysis plan", "Other"]
    assert doc["primary"]["analysis"] == "clmm" and doc["primary"]["baselines"] == ["ProtoTree"]
    assert doc["seed"] == 7 and doc["exclusions"]["max_attention_failures"] == 0
    assert doc["sha256"] == canonical_sha256(doc)
    md = (tmp / "prereg" / "prereg.md").read_text()
    assert "## Analysis plan" in md and doc["sha256"] in md
    assert "rated more salient than ProtoTree" in md and "We will recruit 12 participants" in md
    assert "Secondary: participant level" in md
    # the declared random-effects structures and their order (the fallback) are preregistered
    re_ = doc["primary"]["random_effects"]
    assert list(re_) == ["maximal", "uncorrelated", "intercepts"]
    assert "(1 + method | participant) + (1 | item)" in re_["maximal"]
    assert "fitted in this order until one is identifiable" in md
    # a second run does not overwrite silently
    assert study_main(["prereg", str(spec), "--out", str(tmp / "prereg")]) == 1
    assert "already holds a preregistration" in capsys.readouterr().err


def test_analyze_as_preregistered_and_deviations(study, capsys):
    spec, answers, tmp = study
    assert study_main(["prereg", str(spec), "--out", str(tmp / "prereg")]) == 0
    prereg = str(tmp / "prereg" / "prereg.json")
    capsys.readouterr()
    out = tmp / "r1"
    assert study_main(["analyze", str(answers), "--spec", str(spec), "--prereg", prereg,
                       "--out", str(out), "--no-png", "--seed", "7"]) == 0
    printed = capsys.readouterr().out
    assert "as preregistered" in printed and printed.index("PRIMARY (clmm") < printed.index("[secondary]")
    assert "As preregistered" in (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preregistration"]["status"] == "as preregistered"
    assert summary["primary"]["analysis"] == "clmm"
    assert summary["saliency"]["mixed_model"]["role"] == "primary"
    assert summary["saliency"]["answer_level"]["role"] == "secondary"

    # a different primary analysis is refused with one line ...
    rc = study_main(["analyze", str(answers), "--spec", str(spec), "--prereg", prereg,
                     "--primary", "answer", "--out", str(tmp / "r2"), "--no-png", "--seed", "7"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "preregistered 'clmm'" in err[0]
    assert not (tmp / "r2").exists()
    # ... unless the deviation is declared, and then it is listed
    assert study_main(["analyze", str(answers), "--spec", str(spec), "--prereg", prereg,
                       "--primary", "answer", "--allow-deviations", "--alpha", "0.01",
                       "--out", str(tmp / "r3"), "--no-png"]) == 0
    printed = capsys.readouterr().out
    assert "3 deviation(s)" in printed and "alpha is 0.01" in printed and "seed is 0" in printed
    html = (tmp / "r3" / "report.html").read_text()
    assert "Deviations from the preregistration" in html and "primary analysis is" in html


def test_edited_prereg_is_refused(study, capsys):
    spec, answers, tmp = study
    study_main(["prereg", str(spec), "--out", str(tmp / "p")])
    path = tmp / "p" / "prereg.json"
    doc = json.loads(path.read_text())
    doc["primary"]["alpha"] = 0.1
    path.write_text(json.dumps(doc))
    assert study_main(["analyze", str(answers), "--prereg", str(path), "--out",
                       str(tmp / "r"), "--no-png", "--target", "ProtoPool"]) == 1
    assert "does not match its sha256" in capsys.readouterr().err


def test_primary_from_spec_and_spec_errors(study, capsys):
    spec, answers, tmp = study
    data = dict(SPEC, analysis={**SPEC["analysis"], "primary": "participant"})
    spec.write_text(yaml.safe_dump(data))
    assert load_spec(spec).analysis.primary == "participant"
    assert study_main(["analyze", str(answers), "--spec", str(spec), "--out", str(tmp / "r"),
                       "--no-png"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("PRIMARY (participant")
    assert "[secondary] answer level" in printed and "[secondary] CLMM" in printed
    for bad, field in [({"primary": "anova"}, "analysis.primary"),
                       ({"alpha": 2}, "analysis.alpha"),
                       ({"power": {"sims": 1}}, "analysis.power.sims"),
                       ({"primry": "clmm"}, "analysis.primry")]:
        spec.write_text(yaml.safe_dump(dict(SPEC, analysis=bad)))
        with pytest.raises(StudyError, match=field.replace(".", r"\.")):
            load_spec(spec)
