"""The cumulative link mixed model: exact gradient, agreement with R's ordinal::clmm,
and the mixed-model tables of the analysis (tests/test_analysis_clmm.py)."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study.analysis import clmm as C
from study.analysis.mixed import clmm_ratings, glmm_proportion
from study.analysis.synthetic import synthetic_answers
from study.errors import StudyError

THETA = np.array([-1.5, -0.5, 0.4, 1.3])


def clmm_data(participants=16, items=24, *, seed=0, sd_p=0.8, sd_i=0.6, frac=0.9) -> pd.DataFrame:
    """Ratings from the CLMM itself: 3 methods and 2 data sets over items, crossed
    participant and item intercepts, each participant rates ~frac of the items."""
    rng = np.random.default_rng(seed)
    b_p, b_i = rng.normal(0, sd_p, participants), rng.normal(0, sd_i, items)
    meth, ds = np.arange(items) % 3, (np.arange(items) // 3) % 2
    p, i = np.meshgrid(np.arange(participants), np.arange(items), indexing="ij")
    keep = rng.random(p.shape) < frac
    p, i = p[keep], i[keep]
    eta = np.array([0.0, 0.7, -0.4])[meth[i]] + 0.3 * ds[i] + b_p[p] + b_i[i]
    cum = 1 / (1 + np.exp(-(THETA[None, :] - eta[:, None])))
    u = rng.random(len(p))
    y = (u[:, None] > cum).sum(axis=1)
    return pd.DataFrame({"participant": [f"p{k:03d}" for k in p], "item": [f"t{k:03d}" for k in i],
                         "method": [f"m{k}" for k in meth[i]], "dataset": [f"d{k}" for k in ds[i]],
                         "rating": y + 1})


def binary_data(participants=25, questions=6, seed=2) -> pd.DataFrame:
    """Consistency-like choices: participants differ in their preference."""
    rng = np.random.default_rng(seed)
    pref = rng.normal(0.4, 1.2, participants)
    y = rng.random((participants, questions)) < 1 / (1 + np.exp(-pref[:, None]))
    return pd.DataFrame({"participant": np.repeat([f"p{k:02d}" for k in range(participants)],
                                                  questions),
                         "choice": y.ravel().astype(int)})


def design(df):
    X = np.column_stack([df.method == "m1", df.method == "m2", df.dataset == "d1"]).astype(float)
    return df.rating.to_numpy() - 1, X


def test_laplace_gradient_is_exact():
    df = clmm_data(12, 15, seed=3)
    y, X = design(df)
    codes = [np.unique(df[c], return_inverse=True)[1] for c in ("participant", "item")]
    m = C._Model(y, X, codes, [12, 15], 5)
    psi = np.array([-1.2, -0.1, -0.2, 0.0, 0.5, -0.3, 0.2, np.log(0.7), np.log(0.5)])
    _, g = m.laplace(psi)
    nat = C._natural(m, psi)
    f = lambda x: m.laplace(C._from_natural(m, x), gradient=False)[0]  # noqa: E731
    h = 1e-6
    fd = np.array([(f(nat + h * e) - f(nat - h * e)) / (2 * h) for e in np.eye(len(nat))])
    np.testing.assert_allclose(g, fd, atol=1e-5)


R_SCRIPT = r"""
suppressMessages(library(ordinal))
d <- read.csv("data.csv"); d$rating <- factor(d$rating, ordered = TRUE)
out <- function(m) list(coef = unname(coef(m)), se = unname(sqrt(diag(vcov(m)))),
                        st = if (is.null(m$ST)) numeric(0) else unname(unlist(m$ST)),
                        st_names = if (is.null(m$ST)) character(0) else names(m$ST),
                        loglik = as.numeric(logLik(m)))
ctl <- clmm.control(gradTol = 1e-6)
res <- list(
  crossed = out(clmm(rating ~ method + dataset + (1|participant) + (1|item), data = d,
                     Hess = TRUE, control = ctl)),
  agq = out(clmm(rating ~ method + dataset + (1|participant), data = d, nAGQ = 7,
                 Hess = TRUE, control = ctl)),
  fixed = out(clm(rating ~ method + dataset, data = d)),
  binary = {b <- read.csv("binary.csv"); b$choice <- factor(b$choice)
            out(clmm(choice ~ 1 + (1|participant), data = b, nAGQ = 10, Hess = TRUE,
                     control = ctl))})
fmt <- function(v) paste0("[", paste(sprintf("%.10g", v), collapse = ","), "]")
cat("{", paste(sprintf('"%s": {"coef": %s, "se": %s, "st": %s, "st_names": [%s], "loglik": %.10g}',
    names(res), sapply(res, function(r) fmt(r$coef)), sapply(res, function(r) fmt(r$se)),
    sapply(res, function(r) fmt(r$st)),
    sapply(res, function(r) paste0('"', r$st_names, '"', collapse = ",")),
    sapply(res, function(r) r$loglik)), collapse = ", "), "}\n")
"""


@pytest.fixture(scope="module")
def r_fits(tmp_path_factory):
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed (Debian: r-base-core r-cran-ordinal; "
                    "scripts/setup.sh --test installs them)")
    folder = tmp_path_factory.mktemp("clmm_r")
    df = clmm_data(seed=0)
    df.to_csv(folder / "data.csv", index=False)
    binary_data().to_csv(folder / "binary.csv", index=False)
    (folder / "fit.R").write_text(R_SCRIPT)
    run = subprocess.run(["Rscript", "--vanilla", "fit.R"], cwd=folder, capture_output=True,
                         text=True, timeout=120)
    if "there is no package called" in run.stderr:
        pytest.skip("R package 'ordinal' is not installed (Debian: r-cran-ordinal)")
    assert run.returncode == 0, run.stderr
    return df, json.loads(run.stdout)


def _compare(fit, r, *, st_order):
    ours = np.concatenate([fit.thresholds, fit.beta])
    diffs = {"coefficients": np.abs(ours - r["coef"]).max(),
             "loglik": abs(fit.loglik - r["loglik"])}
    if st_order:
        diffs["sd"] = np.abs(fit.sd[st_order] - r["st"]).max()
    return diffs


def test_crossed_laplace_agrees_with_r_clmm(r_fits):
    df, r = r_fits
    y, X = design(df)
    fit = C.fit_clmm(y, X, [df.participant.to_numpy(), df.item.to_numpy()],
                     term_names=["participant", "item"])
    assert fit.convergence["converged"], fit.convergence
    order = [["participant", "item"].index(n) for n in r["crossed"]["st_names"]]
    diffs = _compare(fit, r["crossed"], st_order=order)
    print("max |ours - R| (crossed, Laplace):", diffs)
    assert max(diffs.values()) < 1e-3
    # clmm's vcov holds the SDs themselves when there are several random terms
    K1p = len(fit.thresholds) + len(fit.beta)
    se = np.concatenate([fit.se[:K1p], fit.variance_components()["sd_se"].to_numpy()[order]])
    np.testing.assert_allclose(se, r["crossed"]["se"], atol=1e-3)


def test_single_factor_agq_agrees_with_r_clmm(r_fits):
    df, r = r_fits
    y, X = design(df)
    fit = C.fit_clmm(y, X, [df.participant.to_numpy()], nagq=7, term_names=["participant"])
    assert fit.method == "AGQ(7)" and fit.convergence["converged"]
    diffs = _compare(fit, r["agq"], st_order=[0])
    print("max |ours - R| (one factor, AGQ 7):", diffs)
    assert max(diffs.values()) < 1e-3
    # with one random term clmm's vcov holds log(SD)
    np.testing.assert_allclose(fit.se, r["agq"]["se"], atol=1e-3)


def test_fixed_effects_only_agrees_with_r_clm(r_fits):
    df, r = r_fits
    y, X = design(df)
    fit = C.fit_clmm(y, X)
    diffs = _compare(fit, r["fixed"], st_order=None)
    assert max(diffs.values()) < 1e-4
    np.testing.assert_allclose(fit.se, r["fixed"]["se"], atol=1e-4)


def test_bad_input_is_one_clear_error():
    with pytest.raises(StudyError, match="category 2 never occurs"):
        C.fit_clmm(np.array([0, 1, 3, 0, 1, 3]), n_categories=4)
    with pytest.raises(StudyError, match="not identifiable"):
        C.fit_clmm(np.array([0, 1, 2, 0, 1, 2]), np.ones((6, 1)))
    with pytest.raises(StudyError, match="exactly one random factor"):
        C.fit_clmm(np.array([0, 1, 2, 0, 1, 2]), None, [np.arange(6) % 2, np.arange(6) % 3],
                   nagq=5)


def test_clmm_ratings_tables_from_answers():
    ans = synthetic_answers(16, methods={"T": 3.6, "B1": 3.0, "B2": 3.5}, items_per_cell=4, seed=4)
    from study.analysis.io import load_answers
    table = load_answers(ans)
    out = clmm_ratings(table, "T", ["B1", "B2"], scale=(1, 2, 3, 4, 5))
    c = out["contrasts"].set_index("baseline")
    assert c.loc["B1", "log_odds_ratio"] > 0 and c.loc["B1", "odds_ratio"] > 1
    assert c.loc["B1", "or_ci_low"] < c.loc["B1", "odds_ratio"] < c.loc["B1", "or_ci_high"]
    assert c.loc["B1", "p_value"] < c.loc["B2", "p_value"]
    lrt = out["lrt"].iloc[0]
    assert lrt["df"] == 2 and lrt["chi2"] > 0 and 0 <= lrt["p_value"] <= 1
    assert out["convergence"].iloc[0]["converged"]
    assert set(out["variance"]["factor"]) == {"participant", "item"}
    assert out["structure"].iloc[0]["line"].startswith("fitted: rating ~ method")


def test_consistency_glmm_keeps_its_level_where_the_binomial_does_not():
    """True null (median participant indifferent), participants differ in preference:
    the answer-level binomial test over-rejects, the mixed model stays near 5%."""
    rng = np.random.default_rng(0)
    participants, questions, sims = 30, 6, 60
    rej_binom = rej_glmm = 0
    cluster = np.repeat(np.arange(participants), questions)
    for _ in range(sims):
        pref = rng.normal(0, 1.5, participants)
        y = rng.random((participants, questions)) < 1 / (1 + np.exp(-pref[:, None]))
        rej_binom += stats.binomtest(int(y.sum()), y.size).pvalue < 0.05
        rej_glmm += glmm_proportion(y.ravel(), cluster)["p_value"] < 0.05
    assert rej_binom / sims >= 0.15
    assert rej_glmm / sims <= 0.10


def test_logistic_mixed_model_agrees_with_r_clmm(r_fits):
    """The consistency model is the two-category CLMM (AGQ, 10 nodes)."""
    _, r = r_fits
    b = binary_data()
    fit = C.fit_clmm(b.choice.to_numpy(), None, [b.participant.to_numpy()], nagq=10)
    diffs = _compare(fit, r["binary"], st_order=[0])
    print("max |ours - R| (binary, AGQ 10):", diffs)
    assert max(diffs.values()) < 1e-3
    glmm = glmm_proportion(b.choice.to_numpy() == 1, b.participant.to_numpy())
    assert glmm["log_odds"] == pytest.approx(-r["binary"]["coef"][0], abs=1e-3)
    assert glmm["se"] == pytest.approx(r["binary"]["se"][0], abs=1e-3)
