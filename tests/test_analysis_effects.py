"""Predicted probabilities per method (conditional and population-averaged) and the
proportional-odds check, against R's ordinal (predict.clm, nominal_test) and against
direct numerical integration."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.special import expit

from study.analysis import clmm_re as R
from study.analysis.effects import nominal_advice, nominal_test, predicted_probabilities
from tests.r_reference import run_r
from tests.test_analysis_clmm_slopes import design, slopes_data

R_SCRIPT = r"""
d <- read.csv("data.csv"); d$rating <- factor(d$rating, ordered = TRUE)
m <- clm(rating ~ method, data = d)
nd <- data.frame(method = c("m0", "m1", "m2"))
p <- predict(m, newdata = nd, type = "prob", interval = TRUE, level = 0.95)
full <- clm(rating ~ method + dataset, data = d)
nt <- nominal_test(full)
cat(obj(list(fit = num(t(p$fit)), lwr = num(t(p$lwr)), upr = num(t(p$upr)),
             nt_terms = paste0("[", paste0('"', rownames(nt)[-1], '"', collapse = ","), "]"),
             nt_lrt = num(nt$LRT[-1]), nt_df = num(nt$Df[-1]))), "\n")
"""


@pytest.fixture(scope="module")
def r_effects(tmp_path_factory):
    df = slopes_data(16, 18, seed=5)
    return df, run_r(tmp_path_factory.mktemp("effects_r"), R_SCRIPT, {"data": df})


def _design(df):
    y, X, _ = design(df)
    return {"y": y, "X": X, "n_method_columns": 2, "categories": ["1", "2", "3", "4", "5"]}


def test_probabilities_agree_with_r_predict_clm(r_effects):
    df, r = r_effects
    d = _design(df)
    d["X"] = d["X"][:, :2]                      # method only, as the R model
    fit = R.fit_clmm_re(d["y"], d["X"], [])
    tab = predicted_probabilities(fit, d, ["m0", "m1", "m2"])
    cond = tab[tab.kind == "conditional"]
    ours = cond.p_equal.to_numpy()
    diffs = {"p": np.abs(ours - r["fit"]).max(),
             "ci_low": np.abs(cond.p_equal_ci_low.to_numpy() - r["lwr"]).max(),
             "ci_high": np.abs(cond.p_equal_ci_high.to_numpy() - r["upr"]).max()}
    print("max |ours - R predict.clm|:", diffs)
    assert max(diffs.values()) < 1e-3
    # without random effects both kinds coincide
    avg = tab[tab.kind == "population-averaged"]
    np.testing.assert_allclose(avg.p_equal.to_numpy(), ours, atol=1e-9)
    ge = cond[cond.category == "4"].p_at_least.to_numpy()
    np.testing.assert_allclose(ge, np.asarray(r["fit"]).reshape(3, 5)[:, 3:].sum(axis=1),
                               atol=1e-3)


def test_nominal_test_agrees_with_r(r_effects):
    df, r = r_effects
    d = _design(df)
    nt = nominal_test(d, {"method": [0, 1], "dataset": [2]})
    assert list(nt.term) == r["nt_terms"] and list(nt.df) == r["nt_df"]
    diff = np.abs(nt.lr_chi2.to_numpy() - r["nt_lrt"]).max()
    print("max |ours - R nominal_test| (LRT):", diff)
    assert diff < 1e-3
    assert nominal_advice(nt).startswith("Proportional odds")


def test_population_averaged_is_the_integral_over_random_effects():
    df = slopes_data(16, 18, seed=5)
    y, X, terms = design(df)
    fit = R.fit_clmm_re(y, X, terms)
    d = {"y": y, "X": X, "n_method_columns": 2, "categories": ["1", "2", "3", "4", "5"]}
    tab = predicted_probabilities(fit, d, ["m0", "m1", "m2"])
    L = fit.terms[0]["chol"]
    z = np.array([1.0, 1.0, 0.0])                 # method m1
    s = np.sqrt(z @ L @ L.T @ z + fit.terms[1]["sd"][0] ** 2)
    eta = fit.beta[0] + fit.beta[2] * X[:, 2].mean()
    cum = [integrate.quad(lambda b, j=j: expit(fit.thresholds[j] - eta - b)
                          * np.exp(-b * b / (2 * s * s)) / np.sqrt(2 * np.pi) / s,
                          -12 * s, 12 * s)[0] for j in range(4)]
    want = np.diff(np.concatenate([[0], cum, [1]]))
    got = tab[(tab.kind == "population-averaged") & (tab.method == "m1")].p_equal.to_numpy()
    np.testing.assert_allclose(got, want, atol=1e-8)
    cond = tab[(tab.kind == "conditional") & (tab.method == "m1")].p_equal.to_numpy()
    assert np.abs(cond - got).max() > 0.01      # integrating flattens the distribution
