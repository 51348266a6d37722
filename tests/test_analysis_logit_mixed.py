"""The logistic mixed model (study/analysis/logit_mixed.py): crossed participant and item
intercepts, a method design and a chance offset logit(1/k) (HIVE distinction task),
matched to R's lme4::glmer (Laplace), recovery of known effects, and bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.analysis.logit_mixed import (chance_offset, fit_logit_mixed, logit_mixed_primary,
                                        lr_test)
from study.errors import StudyError
from tests.r_reference import run_r

TRUE = {"(Intercept)": 0.8, "method[B1]": -0.6, "method[B2]": -1.0}


def distinction(participants=30, items=24, *, seed=0, b0=0.8, effects=(-0.6, -1.0), sdp=0.8,
                sdi=0.6) -> pd.DataFrame:
    """Correct picks among k = 4 or 3 classes, three methods rotated over items,
    intercept b0 above chance (logit(1/k) offset), participant and item intercepts."""
    rng = np.random.default_rng(seed)
    p, i = np.meshgrid(np.arange(participants), np.arange(items), indexing="ij")
    p, i = p.ravel(), i.ravel()
    m = (i + p) % 3
    k = np.where(i % 2 == 0, 4, 3)
    eta = (chance_offset(k) + b0 + np.array([0.0, *effects])[m]
           + rng.normal(0, sdp, participants)[p] + rng.normal(0, sdi, items)[i])
    y = (rng.random(len(p)) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"participant": [f"p{x:02d}" for x in p],
                         "item": [f"i{x:02d}" for x in i],
                         "method": np.array(["T", "B1", "B2"])[m], "k": k,
                         "offset": chance_offset(k), "correct": y})


# glmer's default PIRLS tolerance (tolPwrss 1e-7) and bobyqa's default end radius stop
# about 6e-4 of log-likelihood short of the optimum on these data (its fixed effects move
# by up to 9e-4); the reference is glmer with both tightened, and the default fit is
# printed beside it.
R_SCRIPT = r"""
d <- read.csv("d.csv"); d$method <- factor(d$method, levels = c("T", "B1", "B2"))
tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-9),
                      tolPwrss = 1e-10)
f <- correct ~ method + (1 | participant) + (1 | item) + offset(offset)
g <- glmer(f, family = binomial, data = d, control = tight)
g0 <- glmer(correct ~ 1 + (1 | participant) + (1 | item) + offset(offset), family = binomial,
            data = d, control = tight)
gd <- glmer(f, family = binomial, data = d,
            control = glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
vc <- as.data.frame(VarCorr(g))
cat(obj(list(fixef = num(fixef(g)), se = num(sqrt(diag(as.matrix(vcov(g))))),
  sd_participant = num(vc$sdcor[vc$grp == "participant"]), sd_item = num(vc$sdcor[vc$grp == "item"]),
  loglik = num(as.numeric(logLik(g))), lr = num(as.numeric(2 * (logLik(g) - logLik(g0)))),
  default_fixef = num(fixef(gd)), default_se = num(sqrt(diag(as.matrix(vcov(gd))))),
  default_loglik = num(as.numeric(logLik(gd))))), "\n")
"""


@pytest.fixture(scope="module")
def data():
    return distinction()


@pytest.fixture(scope="module")
def primary(data):
    return logit_mixed_primary(data, "correct", target="T", baselines=["B1", "B2"],
                               offset="offset")


def test_agrees_with_r_glmer(tmp_path, data, primary):
    r = run_r(tmp_path, R_SCRIPT, {"d": data}, packages=("lme4",))
    co = primary["coefficients"]
    var = primary["variance"].set_index("factor")["sd"]
    model = primary["model"].iloc[0]
    diffs = {"fixef": np.abs(co["estimate"] - r["fixef"]).max(),
             "se": np.abs(co["se"] - r["se"]).max(),
             "sd_participant": abs(var["participant"] - r["sd_participant"][0]),
             "sd_item": abs(var["item"] - r["sd_item"][0]),
             "loglik": abs(model["loglik"] - r["loglik"][0]),
             "lr_method": abs(primary["lrt"]["statistic"].iloc[0] - r["lr"][0])}
    default = {"fixef": np.abs(co["estimate"] - r["default_fixef"]).max(),
               "se": np.abs(co["se"] - r["default_se"]).max(),
               "loglik": model["loglik"] - r["default_loglik"][0]}
    print("max |ours - R glmer (tight)|:", diffs, "\n vs glmer defaults:", default)
    assert max(diffs.values()) < 1e-3
    assert default["loglik"] > -1e-6          # never below glmer's own optimum
    assert model["converged"] and "Laplace" in model["convergence"]


def test_recovers_known_effects(primary):
    co = primary["coefficients"].set_index("term")
    for term, value in TRUE.items():   # each estimate within 2.5 SE of the truth
        assert abs(co.loc[term, "estimate"] - value) < 2.5 * co.loc[term, "se"], term
    c = primary["contrasts"].set_index("baseline")
    assert (c["estimate"] > 0).all() and c.loc["B2", "estimate"] > c.loc["B1", "estimate"]
    assert (c["p_holm"] >= c["p_value"]).all() and c["reject"].all()
    assert set(c.columns) >= {"estimate", "se", "z", "p_value", "ci_low", "ci_high",
                              "alternative", "p_holm"}
    lv = primary["levels"].set_index("method")
    assert lv.loc["T", "p_value"] < 0.01          # target above chance
    assert lv.loc["T", "estimate"] == pytest.approx(co.loc["(Intercept)", "estimate"])
    assert primary["lrt"]["p_value"].iloc[0] < 1e-4 and primary["lrt"]["df"].iloc[0] == 2


def test_at_chance_the_intercept_is_near_zero():
    df = distinction(40, 24, seed=5, b0=0.0, effects=(0.0, 0.0), sdp=0.3, sdi=0.3)
    m = fit_logit_mixed(df, "correct", ["method"], offset="offset", levels={"method": ["T", "B1", "B2"]})
    co = m.coefficients().set_index("term")
    assert abs(co.loc["(Intercept)", "estimate"]) < 2.5 * co.loc["(Intercept)", "se"]
    assert lr_test(m, "method")["p_value"].iloc[0] > 0.01
    assert chance_offset(4) == pytest.approx(np.log(1 / 3))


def test_design_matrix_and_intercept_only_agree_with_the_other_paths(data, primary):
    X = pd.DataFrame({"(Intercept)": 1.0, "B1": (data.method == "B1").astype(float),
                      "B2": (data.method == "B2").astype(float)})
    m = fit_logit_mixed(data, "correct", X, offset="offset")
    assert m.formula.startswith("correct ~ 1 + B1 + B2")
    np.testing.assert_allclose(m.beta, primary["coefficients"]["estimate"], atol=1e-6)
    # intercept only, no offset: the pairwise share model (pairwise.logistic_mixed_share);
    # the consistency model mixed.glmm_proportion agrees
    from study.analysis.mixed import glmm_proportion

    share = fit_logit_mixed(data, "correct", [])
    g = glmm_proportion(data.correct.to_numpy() == 1, data.participant.to_numpy(),
                        pair=data["item"].to_numpy())
    assert share.beta[0] == pytest.approx(g["log_odds"], abs=1e-5)
    assert share.fit.se[0] == pytest.approx(g["se"], abs=1e-5)
    with pytest.raises(StudyError, match="not all identifiable"):
        fit_logit_mixed(data, "correct", X.assign(B3=X["B1"]))


def test_bad_input_is_one_clear_line(data):
    with pytest.raises(StudyError, match="column 'correct' is missing"):
        logit_mixed_primary(data.drop(columns="correct"), "correct", target="T", baselines=["B1"])
    with pytest.raises(StudyError, match="target and at least one baseline"):
        logit_mixed_primary(data, "correct", target="T", baselines=[])
    with pytest.raises(StudyError, match="no answers for method 'Z'"):
        logit_mixed_primary(data, "correct", target="T", baselines=["Z"])
    same = data.assign(correct=1)
    with pytest.raises(StudyError, match="cannot fit the logistic model: every answer"):
        logit_mixed_primary(same, "correct", target="T", baselines=["B1"])
    with pytest.raises(StudyError, match="must be 0/1"):
        fit_logit_mixed(data.assign(correct=data.correct * 2), "correct")
    with pytest.raises(StudyError, match="one value only"):
        fit_logit_mixed(data[data.method == "T"], "correct", ["method"])
    with pytest.raises(StudyError, match="k must be >= 2"):
        chance_offset([4, 1])
