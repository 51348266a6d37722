"""Consistency studies with more than two pair sources: the Bradley-Terry logistic mixed
model (correlated by-participant source slopes, crossed with pair intercepts) matched to R's
lme4::glmer, its two-source case equal to the two-source primary, the secondaries, and
bad input."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from study.analysis.io import load_answers
from study.analysis.mixed import glmm_proportion
from study.analysis.multisource import (bt_glmm, comparisons, declared_sources,
                                        multisource_analysis)
from study.errors import StudyError
from tests.r_reference import run_r

SOURCES3 = ("data_dependent", "euclidean", "cosine")


def answers_csv(sources=SOURCES3, *, participants=24, pairs_per=6, beta=(0.0, -0.5, 0.4),
                sd_pc=0.7, sd_pair=0.5, undecided=0.1, seed=3) -> pd.DataFrame:
    """Consistency answers (FORMATS.md §6 columns) comparing every two sources: pairs_per
    questions per comparison, sides random, each participant answers every question."""
    rng = np.random.default_rng(seed)
    worth = dict(zip(sources, beta))
    rows = []
    questions = [(f"c{k:03d}", a, b) for k, (a, b) in enumerate(
        (a, b) for a, b in itertools.combinations(sources, 2) for _ in range(pairs_per))]
    v_pair = {q: rng.normal(0, sd_pair) for q, _a, _b in questions}
    for p in range(participants):
        u = {ab: rng.normal(0, sd_pc) for ab in itertools.combinations(sources, 2)}
        for q, a, b in questions:
            eta = worth[a] - worth[b] + u[(a, b)] + v_pair[q]
            left, right = (a, b) if rng.random() < 0.5 else (b, a)
            if rng.random() < undecided:
                choice, ans = "undecided", "undecided"
            else:
                choice = a if rng.random() < 1 / (1 + np.exp(-eta)) else b
                ans = "A" if choice == left else "B"
            rows.append({"participant_id": f"p{p:02d}", "version": 0, "item_id": q,
                         "kind": "consistency", "answer": ans, "left_source": left,
                         "right_source": right, "choice_source": choice, "finished": 1,
                         "worker_id": f"w{p:02d}", "attention_passed": ""})
    return pd.DataFrame(rows)


R_SCRIPT = r"""
b <- read.csv("bt.csv")
ctl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
g1 <- glmer(y ~ 0 + x_euclidean + x_cosine + (0 + x_euclidean + x_cosine | participant)
            + (1 | pair), family = binomial, data = b, control = ctl)
g0 <- glmer(y ~ 0 + (0 + x_euclidean + x_cosine | participant) + (1 | pair),
            family = binomial, data = b, control = ctl)
sdv <- function(g, f) { v <- as.data.frame(VarCorr(g)); v$sdcor[v$grp == f] }
cat(obj(list(fixef = num(fixef(g1)), se = num(sqrt(diag(as.matrix(vcov(g1))))),
  sd_participant = num(sdv(g1, "participant")), sd_pair = num(sdv(g1, "pair")),
  loglik = num(as.numeric(logLik(g1))), loglik_null = num(as.numeric(logLik(g0))))), "\n")
"""


@pytest.fixture(scope="module")
def data():
    table = load_answers(answers_csv(), sources=SOURCES3)
    comp = comparisons(table, SOURCES3)
    return table, comp


def test_bt_glmm_agrees_with_r_glmer(data, tmp_path):
    _table, comp = data
    res = bt_glmm(comp, SOURCES3)
    dec = comp[comp["choice"] != "undecided"]
    frame = pd.DataFrame({"y": dec["first_wins"].astype(int).to_numpy(),
                          "participant": dec["participant"].to_numpy(),
                          "comparison": dec["comparison"].str.replace(" ", "_").to_numpy(),
                          "pair": dec["pair"].to_numpy()})
    for s in SOURCES3[1:]:
        frame[f"x_{s}"] = (dec["first"] == s).astype(int).to_numpy() - \
            (dec["second"] == s).astype(int).to_numpy()
    r = run_r(tmp_path, R_SCRIPT, {"bt": frame}, packages=("lme4",))
    m, prefs = res["model"].iloc[0], res["preferences"]
    assert m["converged"] and m["df"] == 2
    est = prefs["log_odds"].to_numpy()[1:]
    se = prefs["se"].to_numpy()[1:]
    np.testing.assert_allclose(est, r["fixef"], atol=1e-3)
    # glmer's SE comes from a finite-difference Hessian of its deviance (step 1e-4, where
    # the PIRLS tolerance shows): as in test_analysis_glmm.py, within 0.5% of ours
    np.testing.assert_allclose(se, r["se"], rtol=5e-3)
    part = next(t for t in res["fit"].terms if t["factor"] == "participant")
    # R's sdcor for the participant term: SD of x_euclidean, SD of x_cosine, correlation
    ours = [part["sd"][0], part["sd"][1], part["corr"][1, 0]]
    np.testing.assert_allclose(ours, r["sd_participant"], atol=1e-3)
    assert abs(m["pair_sd"] - r["sd_pair"][0]) < 1e-3
    assert abs(m["loglik"] - r["loglik"][0]) < 1e-3
    assert abs(m["loglik_null"] - r["loglik_null"][0]) < 1e-3
    assert abs(m["lr_chi2"] - 2 * (r["loglik"][0] - r["loglik_null"][0])) < 2e-3


def test_two_sources_are_the_two_source_primary():
    """With two sources the Bradley-Terry model is exactly mixed.glmm_proportion:
    beta_euclidean = -mu, same SDs, log-likelihoods and likelihood ratio."""
    two = SOURCES3[:2]
    table = load_answers(answers_csv(two, pairs_per=14, beta=(0.3, 0.0), seed=5))
    comp = comparisons(table, two)
    bt = bt_glmm(comp, two)
    dec = comp[comp["choice"] != "undecided"]
    dd = (dec["first_wins"]).to_numpy()        # first = data_dependent
    g = glmm_proportion(dd, dec["participant"].to_numpy(), pair=dec["pair"].to_numpy())
    m, pref = bt["model"].iloc[0], bt["preferences"].iloc[1]
    assert pref["log_odds"] == pytest.approx(-g["log_odds"], abs=1e-5)
    assert pref["se"] == pytest.approx(g["se"], rel=1e-4)
    assert m["lr_chi2"] == pytest.approx(g["lr_chi2"], abs=1e-5)
    assert m["pair_sd"] == pytest.approx(g["pair_sd"], abs=1e-5)
    assert m["participant_sd"] == f"euclidean: {g['participant_sd']:.4g}"


def test_secondaries_and_declared_order(data):
    table, _comp = data
    res = multisource_analysis(table, SOURCES3, seed=0)
    prefs = res["preferences"].set_index("source")
    # the simulated worths: cosine > data_dependent > euclidean
    assert prefs.loc["cosine", "worth"] > prefs.loc["data_dependent", "worth"] > \
        prefs.loc["euclidean", "worth"]
    assert prefs["worth"].sum() == pytest.approx(0.0, abs=1e-9)
    assert res["model"].iloc[0]["p_value"] < 0.05
    wr = res["participant"]["win_rates"].set_index("source")["mean_win_rate"]
    assert wr["cosine"] > wr["euclidean"]
    fr = res["participant"]["friedman"].iloc[0]
    assert fr["participants"] == 24 and fr["df"] == 2 and 0 <= fr["p_value"] <= 1
    comps = res["answer"]["comparisons"]
    assert list(comps["comparison"]) == ["data_dependent vs euclidean",
                                         "data_dependent vs cosine", "euclidean vs cosine"]
    assert (comps["p_holm"] >= comps["p_value"]).all()
    # without --sources the defaults come first, then the other names in order
    assert declared_sources(table) == ("data_dependent", "euclidean", "cosine")


def test_unknown_source_is_one_line_naming_row_and_known_sources(tmp_path):
    df = answers_csv(participants=3, pairs_per=1)
    df.loc[4, "choice_source"] = "manhattan"
    path = tmp_path / "answers.csv"
    df.to_csv(path, index=False)
    with pytest.raises(StudyError) as exc:
        load_answers(path, sources=SOURCES3)
    msg = str(exc.value)
    assert "\n" not in msg and "row 5" in msg and "'manhattan'" in msg
    assert "known: data_dependent, euclidean, cosine, or undecided" in msg
    # without declared sources only the two defaults are known
    with pytest.raises(StudyError, match="known: data_dependent, euclidean, or undecided\\)"):
        load_answers(answers_csv(participants=2, pairs_per=1))


def test_cli_from_another_folder_with_three_sources(tmp_path):
    """The path a researcher takes: the answers CSV, `python -m study analyze --sources`,
    run from another folder; the primary sentence states the omnibus result honestly."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    answers_csv().to_csv(tmp_path / "answers.csv", index=False)
    null = answers_csv(beta=(0.0, 0.0, 0.0), seed=11, sd_pc=0.3, sd_pair=0.2)
    null.to_csv(tmp_path / "null.csv", index=False)
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    outs = {}
    for name in ("answers", "null"):
        run = subprocess.run([sys.executable, "-m", "study", "analyze", f"{name}.csv", "--out",
                              f"out-{name}", "--sources", ",".join(SOURCES3),
                              "--agreement-resamples", "0", "--no-png"],
                             cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr
        outs[name] = run.stdout
    assert "Participants did not choose the 3 pair sources (data_dependent, euclidean, cosine) " \
           "equally often (highest estimate: cosine): LR chi2 (2 df)" in outs["answers"]
    assert "The data do not show that participants preferred any of the 3 pair sources" \
        in outs["null"]
    report = (tmp_path / "out-answers" / "report.html").read_text()
    assert "Bradley-Terry logistic mixed model" in report and "Friedman" in report
    prefs = pd.read_csv(tmp_path / "out-answers" / "tables" / "consistency_preferences.csv")
    assert list(prefs["source"]) == list(SOURCES3)
    # without --sources the third source is an unknown source: one line naming the row
    run = subprocess.run([sys.executable, "-m", "study", "analyze", "answers.csv", "--out", "x"],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode != 0 and not (tmp_path / "x").exists()
    err = run.stderr.strip().splitlines()
    assert len(err) == 1 and "answers.csv row" in err[0] and "known: data_dependent, euclidean" in err[0]


def test_spec_sources_field(tmp_path):
    from study.spec import DEFAULT_SOURCES, parse_sources

    assert parse_sources(tmp_path, None) == DEFAULT_SOURCES
    assert parse_sources(tmp_path, list(SOURCES3)) == SOURCES3
    for bad in (["data_dependent"], ["a", "a"], ["undecided", "x"], ["Bad Name", "x"], "x,y"):
        with pytest.raises(StudyError, match="field 'sources'"):
            parse_sources(tmp_path, bad)
    with pytest.raises(StudyError, match="only consistency"):
        parse_sources(tmp_path, list(SOURCES3), "saliency")


def test_few_participants_use_the_parametric_bootstrap():
    """Below the declared number of levels (mixed.BOOTSTRAP_BELOW) the p-value of "no
    source preferred" comes from the parametric bootstrap; it lies on (1 + k) / (B + 1)."""
    table = load_answers(answers_csv(participants=8, pairs_per=4, seed=9), sources=SOURCES3)
    comp = comparisons(table, SOURCES3)
    res = bt_glmm(comp, SOURCES3, bootstrap=19, seed=1)
    m = res["model"].iloc[0]
    assert m["p_method"] == "parametric bootstrap of the likelihood ratio (19 draws)"
    assert m["p_value"] * 20 == pytest.approx(round(m["p_value"] * 20))
    auto = bt_glmm(comp, SOURCES3, seed=1)["model"].iloc[0]   # 8 participants: the rule asks for it
    assert auto["p_method"].startswith("parametric bootstrap") and "199" in auto["p_method"]
