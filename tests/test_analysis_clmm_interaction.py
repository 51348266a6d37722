"""CLMMs on any fixed design (study/analysis/ordinal_design.py): the HIVE agreement
primary, confidence ~ correct x method with crossed participant and item intercepts,
matched to R's ordinal::clmm; recovery of a known interaction; the similarity primary
(clmm_by_method); bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.analysis.ordinal_design import clmm_by_method, clmm_interaction
from study.errors import StudyError
from tests.r_reference import run_r

THETA = np.array([-1.0, 0.2, 1.3])
GAP = {"T": 1.5, "B1": 0.5, "B2": 0.0}      # correct - incorrect, per method


def agreement(participants=16, items=21, *, seed=0, gap=tuple(GAP.values()),
              meff=(0.0, 0.2, -0.2), sdp=0.8, sdi=0.5) -> pd.DataFrame:
    """4-point confidence: items are right or wrong predictions, methods rotated over
    items, the correct - incorrect gap differs by method."""
    rng = np.random.default_rng(seed)
    p, i = np.meshgrid(np.arange(participants), np.arange(items), indexing="ij")
    p, i = p.ravel(), i.ravel()
    m = (i + p) % 3
    corr = (np.arange(items) % 5 < 3).astype(int)[i]
    eta = (np.array(meff)[m] + np.array(gap)[m] * corr + rng.normal(0, sdp, participants)[p]
           + rng.normal(0, sdi, items)[i])
    cum = 1 / (1 + np.exp(-(THETA[None, :] - eta[:, None])))
    y = (rng.random(len(p))[:, None] > cum).sum(axis=1) + 1
    return pd.DataFrame({"participant": [f"p{x:02d}" for x in p],
                         "item": [f"i{x:02d}" for x in i],
                         "method": np.array(["T", "B1", "B2"])[m], "correct": corr,
                         "confidence": y})


# Participants and items differ in number on purpose: with equally many levels,
# ordinal::clmm (2022.11.16) labels the two variances the wrong way round in VarCorr
# (its ranef modes show which is which; seen on this generator with 24 and 24).
R_SCRIPT = r"""
d <- read.csv("ag.csv")
d$method <- factor(d$method, levels = c("T", "B1", "B2"))
d$confidence <- factor(d$confidence, ordered = TRUE)
m <- clmm(confidence ~ correct * method + (1 | participant) + (1 | item), data = d)
m0 <- clmm(confidence ~ correct + method + (1 | participant) + (1 | item), data = d, Hess = FALSE)
v <- VarCorr(m)
cat(obj(list(coef = num(coef(m)), se = num(sqrt(diag(vcov(m)))[seq_along(coef(m))]),
  sd_participant = num(sqrt(v$participant[1])), sd_item = num(sqrt(v$item[1])),
  loglik = num(as.numeric(logLik(m))), lr = num(as.numeric(2 * (logLik(m) - logLik(m0)))))),
  "\n")
"""


@pytest.fixture(scope="module")
def data():
    return agreement()


@pytest.fixture(scope="module")
def result(data):
    return clmm_interaction(data, target="T", baselines=["B1", "B2"], scale=[1, 2, 3, 4])


def test_agrees_with_r_clmm(tmp_path, data, result):
    r = run_r(tmp_path, R_SCRIPT, {"ag": data})
    co = result["coefficients"]
    var = result["variance"].set_index("factor")["sd"]
    diffs = {"coef": np.abs(co["estimate"] - r["coef"]).max(),
             "se": np.abs(co["se"] - r["se"]).max(),
             "sd_participant": abs(var["participant"] - r["sd_participant"][0]),
             "sd_item": abs(var["item"] - r["sd_item"][0]),
             "loglik": abs(result["model"]["loglik"].iloc[0] - r["loglik"][0]),
             "lr_interaction": abs(result["lrt"]["statistic"].iloc[0] - r["lr"][0])}
    print("max |ours - R ordinal::clmm| (correct * method):", diffs)
    assert max(diffs.values()) < 1e-3
    assert list(co["term"])[3:] == ["correct", "method[B1]", "method[B2]",
                                    "correct:method[B1]", "correct:method[B2]"]


def test_recovers_the_interaction(result):
    g = result["gaps"].set_index("method")
    for m, value in GAP.items():
        assert abs(g.loc[m, "estimate"] - value) < 2.5 * g.loc[m, "se"], m
    assert g.loc["T", "p_value"] < 0.01
    t = result["interaction"].set_index("baseline")
    # the contrast is gap[T] - gap[b], and the Wald and LR tests agree on its direction
    assert t.loc["B2", "estimate"] == pytest.approx(g.loc["T", "estimate"] - g.loc["B2", "estimate"])
    assert t.loc["B2", "reject"] and t.loc["B2", "signed_root"] > 0
    assert (t["p_holm"] >= t["p_value"]).all()
    assert set(t.columns) >= {"estimate", "se", "z", "p_value", "ci_low", "ci_high",
                              "alternative", "p_holm"}
    assert result["lrt"]["df"].iloc[0] == 2 and result["lrt"]["p_value"].iloc[0] < 0.01
    assert result["model"]["converged"].iloc[0]


def test_similarity_by_method():
    rng = np.random.default_rng(3)
    p, i = np.meshgrid(np.arange(20), np.arange(30), indexing="ij")
    p, i = p.ravel(), i.ravel()
    m = i % 3                                            # items nested in methods
    eta = np.array([0.0, -1.2, -0.4])[m] + rng.normal(0, 0.6, 20)[p] + rng.normal(0, 0.3, 30)[i]
    theta = np.array([-1.5, -0.5, 0.5, 1.5])
    y = (rng.random(len(p))[:, None] > 1 / (1 + np.exp(-(theta - eta[:, None])))).sum(axis=1)
    df = pd.DataFrame({"participant": p.astype(str), "item": i.astype(str),
                       "method": np.array(["T", "B1", "B2"])[m], "similarity": y + 1})
    out = clmm_by_method(df, target="T", baselines=["B1", "B2"], scale=[1, 2, 3, 4, 5],
                         structure="intercepts", profile=False)
    c = out["contrasts"].set_index("baseline")
    assert (c["estimate"] > 0).all() and c.loc["B1", "estimate"] > c.loc["B2", "estimate"]
    assert c.loc["B1", "reject"]
    assert out["structure"]["structure"].iloc[0] == "intercepts"


def test_bad_input_is_one_clear_line(data):
    kw = {"target": "T", "baselines": ["B1"], "scale": [1, 2, 3, 4]}
    with pytest.raises(StudyError, match="column 'correct' is missing"):
        clmm_interaction(data.drop(columns="correct"), **kw)
    with pytest.raises(StudyError, match="target and at least one baseline"):
        clmm_interaction(data, target="T", baselines=[], scale=[1, 2, 3, 4])
    with pytest.raises(StudyError, match="every answer in 'confidence' is 2"):
        clmm_interaction(data.assign(confidence=2), **kw)
    with pytest.raises(StudyError, match="row 0: 9 is not on the scale"):
        clmm_interaction(data.assign(confidence=9), **kw)
    with pytest.raises(StudyError, match="answers only for correct predictions"):
        clmm_interaction(data.assign(correct=1), **kw)
    with pytest.raises(StudyError, match="no answers for method 'Z'"):
        clmm_by_method(data.rename(columns={"confidence": "similarity"}), target="T",
                       baselines=["Z"], scale=[1, 2, 3, 4])
