"""The HIVE kinds' shared analysis (study/kinds/target_analysis.py) on seeded answers made
here, without building a study: each kind's primary rows, sentences, summary.json section,
tables and report sections, the target checks and a mixed model that cannot be fitted."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.analysis.pipeline import AnalysisOptions, analyze
from study.errors import StudyError

EFFECTS = {"T": 1.0, "B1": 0.0, "B2": 0.3}
SCALES = {"hive_distinction": (1, 2, 3, 4, 5), "hive_agreement": (1, 2, 3, 4)}


def answers(kind: str, participants: int = 16, items: int = 8, seed: int = 7) -> pd.DataFrame:
    """Distinction: hits with log odds above chance EFFECTS[method]; agreement: confidence
    higher for right predictions by EFFECTS[method] (none for B1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(participants):
        lean = rng.normal(0, 0.5)
        for m, eff in EFFECTS.items():
            for i in range(items):
                right, k = i % 2 == 0, 4 if i < items - 2 else 3
                row = dict(participant_id=f"P{p:03d}", worker_id=f"W{p:03d}", item_id=f"{m}{i}", kind=kind,
                           dataset="birds", method=m, finished="1", attention_passed="")
                if kind == "hive_distinction":
                    eta = np.log(1 / (k - 1)) + eff + lean + rng.normal(0, 0.3)
                    hit = rng.random() < 1 / (1 + np.exp(-eta))
                    row.update(answer=str(1 + int(rng.integers(0, k))), choice_source="target" if hit else "other",
                               condition=f"model={'right' if right else 'wrong'};k={k}")
                else:
                    latent = (eff if right else -eff) * 0.8 + lean + rng.normal(0, 1)
                    row.update(answer=str(int(np.clip(np.round(2.5 + latent), 1, 4))), choice_source="",
                               condition="model=right" if right else "model=wrong")
                rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module", params=list(SCALES))
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def data(kind):
    return answers(kind)


def _run(kind, data, **kw):
    return analyze(data, AnalysisOptions(agreement_resamples=0, scale=SCALES[kind], **{"target": "T", **kw}))


@pytest.mark.parametrize("primary", ["clmm", "participant", "answer"])
def test_each_primary_gives_one_row_per_baseline_and_a_finding(kind, data, primary):
    res = _run(kind, data, primary=primary)
    a = res.analyses[0]
    rows = res.primary
    assert list(rows["comparison"]) == ["T vs B1", "T vs B2"] and (rows["analysis"] == primary).all()
    assert rows["effect"].iloc[0] == a.effects[primary]
    assert bool(rows["reject"].iloc[0])               # T is clearly better than B1
    sentence = a.sentences(res, rows)[0]
    assert sentence.startswith("With T's explanations") and ("better" in sentence or "more often" in sentence)
    if primary == "clmm":
        assert rows["unit"].iloc[0] == "answer in participant × item (mixed model)"
        assert rows["n"].iloc[0] == "384 answers, 16 participants, 24 items"


def test_a_worse_target_and_a_null_result_read_as_such(kind, data):
    res = _run(kind, data, target="B1", baselines=("T",), primary="participant", alternative="two-sided")
    worse = res.analyses[0].sentences(res, res.primary)[0]
    assert " worse than with T's" in worse or " less often than with T's" in worse
    res = _run(kind, data, target="B2", baselines=("T",), primary="answer", alternative="greater")
    assert res.analyses[0].sentences(res, res.primary)[0].startswith("The data do not show")


def test_summary_tables_and_report_list_the_kinds_parts(kind, data):
    res = _run(kind, data)
    a = res.analyses[0]
    role = {"clmm": "primary"}.get
    section = a.summary(res, lambda n: role(n) or "secondary")[kind]
    assert section["mixed_model"]["role"] == "primary" and section["participant_level"]["role"] == "secondary"
    assert list(section["mixed_model"]) == ["role", "results", *(p.summary for p in a.mixed_parts), "model"]
    assert list(section)[-len(a.describe):] == [p.summary for p in a.describe]
    assert list(a.tables(res)) == [f"{kind}_{k}" for k in ("mixed", *(p.table for p in a.mixed_parts),
                                                           "participant", "answer", *(p.table for p in a.describe))]
    html = "\n".join(a.report_sections(res, lambda n: "primary" if n == "clmm" else "secondary"))
    assert f"<h3>{a.title} ({kind})</h3>" in html
    for caption in [a.mixed_caption, a.participant_caption, a.answer_caption,
                    *(p.caption for p in a.mixed_parts + a.describe)]:
        assert caption.replace("'", "&#x27;") in html, caption


def test_without_mixed_models_the_summary_has_none(kind, data):
    res = _run(kind, data, primary="answer", mixed=False, baselines=("B2",))
    a = res.analyses[0]
    assert a.summary(res, lambda n: "x")[kind]["mixed_model"] is None
    assert list(a.tables(res)) == [f"{kind}_{k}" for k in ("participant", "answer", *(p.table for p in a.describe))]
    assert list(res.primary["comparison"]) == ["T vs B2"]


@pytest.mark.parametrize("options, message", [
    ({"target": None}, "name the target method with --target (methods: B1, B2, T)"),
    ({"target": "X"}, "--target 'X' is not a method in the {kind} answers"),
    ({"baselines": ("T",)}, "baseline 'T' is not a method in the {kind} answers"),
])
def test_target_and_baselines_are_checked(kind, data, options, message):
    with pytest.raises(StudyError) as err:
        _run(kind, data, **options)
    assert message.format(kind=kind) in str(err.value) and "\n" not in str(err.value)


def test_a_model_that_cannot_be_fitted_stops_the_primary_and_is_a_note_otherwise(kind, data):
    flat = data.assign(choice_source="target") if kind == "hive_distinction" else data.assign(answer="3")
    name = "logistic mixed model" if kind == "hive_distinction" else "CLMM"
    with pytest.raises(StudyError, match=rf"primary analysis \({name}\) cannot be fitted"):
        _run(kind, flat)
    res = _run(kind, flat, primary="participant")
    assert any(n.startswith(f"Secondary {name} not fitted") for n in res.notes)
    assert res.analyses[0].convergence(res) == (None, "")


def test_an_unconverged_primary_is_no_conclusion(kind, data):
    res = _run(kind, data)
    a = res.analyses[0]
    model = res.kind_tables[a.name]["model"]
    model["converged"], model["convergence"] = False, "did not converge: test"
    assert a.convergence(res) == (False, "did not converge: test")
    assert all(s.startswith("No conclusion") and "did not converge: test" in s
               for s in a.sentences(res, res.primary))


def test_answers_of_the_target_only_are_one_line(kind, data):
    """No baseline in the answers: one error line, not a KeyError deep in the tables."""
    with pytest.raises(StudyError) as err:
        _run(kind, data[data["method"] == "T"])
    assert "hold only the target method 'T'" in str(err.value) and "\n" not in str(err.value)
