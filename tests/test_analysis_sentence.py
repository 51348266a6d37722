"""The primary result in one sentence (study/analysis/sentence.py), made from the numbers,
and the same sentence in report.html, summary.json, primary.tex and the CLI output."""
from __future__ import annotations

import html
import json

import pytest

from study.analysis.cli import main as analyze_main
from study.analysis.sentence import format_p, row_sentence
from study.analysis.synthetic import synthetic_answers

ROW = {"study": "saliency", "comparison": "ProtoPool vs ProtoPool w/o focal", "effect": "odds ratio of a higher rating",
       "estimate": 2.3112, "ci_low": 1.4187, "ci_high": 3.7703, "p_value": 0.0008, "p_holm": 0.0008,
       "reject": True, "alternative": "greater", "n": "2400 answers, 40 participants, 60 items"}


def test_a_significant_clmm_result():
    assert row_sentence(ROW, primary="clmm", converged=True) == (
        "Participants rated ProtoPool higher than ProtoPool w/o focal: odds ratio 2.31 [1.42, 3.77], "
        "p = 0.0008, 40 participants, 60 items; primary analysis: CLMM.")


def test_not_significant_and_not_converged_claim_nothing():
    weak = {**ROW, "estimate": 1.12, "ci_low": 0.7, "ci_high": 1.8, "p_holm": 0.62, "reject": False}
    assert row_sentence(weak, primary="clmm", converged=True) == (
        "The data do not show that participants rated ProtoPool higher than ProtoPool w/o focal: odds ratio "
        "1.12 [0.70, 1.80], p = 0.62, 40 participants, 60 items; primary analysis: CLMM.")
    broken = row_sentence(ROW, primary="clmm", converged=False, convergence="Hessian not positive definite")
    assert broken.startswith("No conclusion: the primary CLMM fit did not converge (Hessian not positive definite)")
    assert "must not be reported as a result" in broken and "rated" not in broken
    lower = {**ROW, "estimate": 0.4, "ci_low": 0.2, "ci_high": 0.8, "alternative": "two-sided"}
    assert row_sentence(lower, primary="clmm", converged=True).startswith(
        "Participants rated ProtoPool lower than ProtoPool w/o focal: odds ratio 0.40")
    two = row_sentence({**ROW, "p_holm": 0.012}, primary="clmm", converged=True, several=True)
    assert "Holm-adjusted p = 0.012" in two


def test_consistency_and_other_primaries():
    row = {"study": "consistency", "comparison": "data-dependent vs Euclidean pairs, all versions",
           "effect": "proportion data-dependent", "estimate": 0.64, "ci_low": 0.55, "ci_high": 0.72,
           "p_value": 0.004, "p_holm": 0.004, "reject": True, "alternative": "two-sided", "n": "120 decided answers"}
    assert row_sentence(row, primary="answer") == (
        "Participants judged the data-dependent prototype pairs more consistent: proportion of data-dependent "
        "choices 0.64 [0.55, 0.72], p = 0.004, 120 decided answers; primary analysis: answer-level binomial test.")
    assert row_sentence({**row, "reject": False, "p_holm": 0.3}, primary="answer").startswith(
        "The data do not show that participants judged either kind of prototype pair more consistent")
    assert [format_p(p) for p in (0.00001, 0.00083, 0.0123, 0.05, 0.623, float("nan"))] == [
        "p < 0.0001", "p = 0.0008", "p = 0.012", "p = 0.05", "p = 0.62", "p not available"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    df = synthetic_answers(16, methods={"ProtoPool <b>": 3.8, "ProtoPool w/o focal": 3.0},
                           consistency_versions=2, seed=5)
    tmp = tmp_path_factory.mktemp("sentence")
    df.to_csv(tmp / "answers.csv", index=False)
    out = tmp / "report"
    assert analyze_main([str(tmp / "answers.csv"), "--target", "ProtoPool <b>", "--out", str(out), "--no-png"]) == 0
    return out


def test_the_same_sentence_everywhere(report):
    summary = json.loads((report / "summary.json").read_text())
    sentence = summary["primary"]["sentence"]
    results = summary["primary"]["results"]
    first = results[0]
    assert sentence.startswith("Participants rated ProtoPool <b> higher than ProtoPool w/o focal: odds ratio "
                               f"{first['estimate']:.2f} [{first['ci_low']:.2f}, {first['ci_high']:.2f}]")
    assert sentence.count("primary analysis:") == len(results)
    page = (report / "report.html").read_text()
    # each study's primary box opens with its own sentences; together they are the summary's
    heads = [m for m in page.split("<p class='headline'><strong>")[1:]]
    assert " ".join(h.split("</strong></p>")[0] for h in heads) == html.escape(sentence, quote=True)
    assert page.index("class='headline'") < page.index("<table")          # the sentence, then the table
    assert "ProtoPool <b>" not in page
    tex = (report / "primary.tex").read_text()
    assert "ProtoPool <b> higher than ProtoPool w/o focal" in tex and "odds ratio" in tex
