"""The Bradley–Terry model of pairwise choices (study/analysis/bradley_terry.py): the
mixed model with participant worth slopes matched to lme4::glmer and the fixed-effects
fallback to glm, recovery of known worths, two methods, and bad input."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from study.analysis.bradley_terry import bradley_terry
from study.errors import StudyError
from tests.r_reference import run_r

METHODS = ["T", "B1", "B2", "B3"]
LAMBDA = (0.0, -0.5, -1.0, 0.4)


def pairwise(participants=30, per=18, *, seed=1, lam=LAMBDA, sd=0.8, side=0.2) -> pd.DataFrame:
    """Choices between two methods shown in random order, from the BT model with a
    first-position bias `side` and participant worth deviations of SD `sd`."""
    rng = np.random.default_rng(seed)
    names = METHODS[:len(lam)]
    pairs = list(itertools.combinations(range(len(lam)), 2))
    dev = rng.normal(0, sd, (participants, len(lam)))
    rows = []
    for p in range(participants):
        for j in range(per):
            a, b = pairs[(j + p) % len(pairs)]
            if rng.random() < 0.5:
                a, b = b, a
            eta = side + lam[a] - lam[b] + dev[p, a] - dev[p, b]
            first = rng.random() < 1 / (1 + np.exp(-eta))
            rows.append({"participant": f"p{p:02d}", "item": f"i{j:02d}", "first": names[a],
                         "second": names[b], "chosen": names[a] if first else names[b]})
    return pd.DataFrame(rows)


R_SCRIPT = r"""
d <- read.csv("bt.csv")
for (m in c("B1", "B2", "B3")) d[[paste0("w", m)]] <- (d$first == m) - (d$second == m)
d$y <- as.integer(d$chosen == d$first)
tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-9),
                      tolPwrss = 1e-10)
g <- glmer(y ~ 1 + wB1 + wB2 + wB3 + (0 + wB1 + wB2 + wB3 || participant), family = binomial,
           data = d, control = tight)
g0 <- glmer(y ~ 1 + (0 + wB1 + wB2 + wB3 || participant), family = binomial, data = d,
            control = tight)
gl <- glm(y ~ 1 + wB1 + wB2 + wB3, family = binomial, data = d)
cat(obj(list(fixef = num(fixef(g)), se = num(sqrt(diag(as.matrix(vcov(g))))),
  sd = num(as.data.frame(VarCorr(g))$sdcor), loglik = num(as.numeric(logLik(g))),
  lr = num(as.numeric(2 * (logLik(g) - logLik(g0)))),
  glm_coef = num(coef(gl)), glm_se = num(sqrt(diag(vcov(gl)))),
  glm_loglik = num(as.numeric(logLik(gl))))), "\n")
"""


@pytest.fixture(scope="module")
def data():
    return pairwise()


@pytest.fixture(scope="module")
def mixed(data):
    return bradley_terry(data, METHODS)


@pytest.fixture(scope="module")
def fixed(data):
    return bradley_terry(data, METHODS, random="none")


def test_agrees_with_r_glmer_and_glm(tmp_path, data, mixed, fixed):
    r = run_r(tmp_path, R_SCRIPT, {"bt": data}, packages=("lme4",))
    co, cf = mixed["coefficients"], fixed["coefficients"]
    diffs = {"fixef": np.abs(co["estimate"] - r["fixef"]).max(),
             "se": np.abs(co["se"] - r["se"]).max(),
             "sd": np.abs(mixed["variance"]["sd"] - r["sd"]).max(),
             "loglik": abs(mixed["model"]["loglik"].iloc[0] - r["loglik"][0]),
             "lr_method": abs(mixed["lrt"]["statistic"].iloc[0] - r["lr"][0]),
             "glm_coef": np.abs(cf["estimate"] - r["glm_coef"]).max(),
             "glm_se": np.abs(cf["se"] - r["glm_se"]).max(),
             "glm_loglik": abs(fixed["model"]["loglik"].iloc[0] - r["glm_loglik"][0])}
    # the LR differs by ~4e-4: glmer's reduced fit (no worths) stops 2e-4 of log-likelihood
    # below ours even with the tight control (ours: -341.65254, glmer: -341.65273)
    print("max |ours - R (glmer worth slopes / glm)|:", diffs)
    assert max(diffs.values()) < 1e-3
    assert mixed["model"]["random"].iloc[0] == "worth" and mixed["model"]["converged"].iloc[0]
    assert fixed["model"]["random"].iloc[0] == "none"


def test_worths_recover_the_truth(mixed):
    w = mixed["worths"].set_index("method")
    assert w["worth"].sum() == pytest.approx(1.0)
    assert (w["worth_ci_low"] < w["worth"]).all() and (w["worth"] < w["worth_ci_high"]).all()
    for m, lam in zip(METHODS, LAMBDA):
        if m != "T":
            assert abs(w.loc[m, "log_worth"] - lam) < 2.5 * w.loc[m, "se"], m
    assert list(w.sort_values("log_worth").index) == ["B2", "B1", "T", "B3"]
    c = mixed["contrasts"].set_index("baseline")
    assert c.loc["B2", "reject"] and c.loc["B1", "reject"] and not c.loc["B3", "reject"]
    assert (c["p_holm"] >= c["p_value"]).all()
    assert mixed["lrt"]["df"].iloc[0] == 3 and mixed["lrt"]["p_value"].iloc[0] < 1e-3


def test_two_methods_and_another_target(data):
    two = data[data["first"].isin(["T", "B2"]) & data["second"].isin(["T", "B2"])]
    r = bradley_terry(two, ["T", "B2"])
    c = r["contrasts"].iloc[0]
    assert c["estimate"] > 0 and c["p_target_chosen"] > 0.5 and len(r["worths"]) == 2
    r3 = bradley_terry(data, METHODS, target="B3", random="none")
    t = r3["contrasts"].set_index("baseline")
    assert set(t.index) == {"T", "B1", "B2"} and (t["estimate"] > 0).all()


def test_few_participants_fall_back_to_fixed_effects(data):
    few = data[data.participant.isin(["p00", "p01", "p02"])]
    r = bradley_terry(few, METHODS)
    assert r["model"]["random"].iloc[0] == "none"
    assert "participants" in r["model"]["fallback_reason"].iloc[0]


def test_bad_input_is_one_clear_line(data):
    with pytest.raises(StudyError, match="column 'chosen' is missing"):
        bradley_terry(data.drop(columns="chosen"), METHODS)
    with pytest.raises(StudyError, match="at least two methods"):
        bradley_terry(data, ["T"])
    with pytest.raises(StudyError, match="'B3' is not one of T, B1, B2"):
        bradley_terry(data, ["T", "B1", "B2"])
    bad = data.copy()
    bad.loc[3, "chosen"] = "Z"
    with pytest.raises(StudyError, match="row 3: chosen 'Z' is neither"):
        bradley_terry(bad, METHODS)
    always = data.copy()
    has_t = (always["first"] == "T") | (always["second"] == "T")
    always.loc[has_t, "chosen"] = "T"
    with pytest.raises(StudyError, match="cannot fit the Bradley-Terry model: method 'T' won"):
        bradley_terry(always, METHODS)
