"""The pairwise primary (study/analysis/pairwise.py): the share of choices for the target
in `choice ~ 1 + (1 | participant) + (1 | item)` (binomial logit, Laplace), matched to
R's lme4::glmer on a seeded pairwise data set, through the contrast table the pipeline
reports."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study.analysis.pairwise import contrast_choices, logistic_mixed_share, pairwise_mixed
from tests.r_reference import run_r

METHODS = ("T", "B1", "B2")


def pairwise_answers(participants=24, items=18, *, seed=3, worth=(0.6, 0.0, -0.2), sdp=0.7,
                     sdi=0.5, undecided=0.05) -> pd.DataFrame:
    """Each item shows two of the three methods (pairs rotated over items, sides random);
    P(left chosen) from the worths, a participant's lean to the target and an item effect."""
    rng = np.random.default_rng(seed)
    pairs = [(0, 1), (0, 2), (1, 2)]
    p, i = np.meshgrid(np.arange(participants), np.arange(items), indexing="ij")
    p, i = p.ravel(), i.ravel()
    a, b = np.array([pairs[k % 3] for k in range(items)]).T
    flip = rng.random(items) < 0.5
    left, right = np.where(flip, b, a)[i], np.where(flip, a, b)[i]
    w = np.array(worth)
    lean = rng.normal(0, sdp, participants)[p]
    eta = (w[left] - w[right] + lean * ((left == 0).astype(float) - (right == 0))
           + rng.normal(0, sdi, items)[i])
    pick_left = rng.random(len(p)) < 1 / (1 + np.exp(-eta))
    choice = np.array(METHODS)[np.where(pick_left, left, right)].astype(object)
    choice[rng.random(len(p)) < undecided] = "undecided"
    return pd.DataFrame({"participant": [f"p{x:02d}" for x in p], "item": [f"q{x:02d}" for x in i],
                         "left": np.array(METHODS)[left], "right": np.array(METHODS)[right],
                         "choice": choice})


# glmer's defaults stop short of the optimum by ~1e-4 in the fixed effect on small data;
# the reference is glmer with bobyqa's end radius and the PIRLS tolerance tightened
R_SCRIPT = r"""
tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-9),
                      tolPwrss = 1e-10)
out <- list()
for (b in c("B1", "B2")) {
  d <- read.csv(paste0(b, ".csv"))
  g <- glmer(success ~ 1 + (1 | participant) + (1 | item), family = binomial, data = d,
             control = tight)
  g0 <- glmer(success ~ 0 + (1 | participant) + (1 | item), family = binomial, data = d,
              control = tight)
  vc <- as.data.frame(VarCorr(g))
  out[[paste0(b, "_est")]] <- num(c(fixef(g), sqrt(diag(as.matrix(vcov(g)))),
    vc$sdcor[vc$grp == "participant"], vc$sdcor[vc$grp == "item"], as.numeric(logLik(g)),
    as.numeric(2 * (logLik(g) - logLik(g0)))))
}
cat(obj(out), "\n")
"""


@pytest.fixture(scope="module")
def frame():
    return pairwise_answers()


def test_pairwise_primary_agrees_with_r_glmer(tmp_path, frame):
    subs = {b: contrast_choices(frame, "T", b) for b in ("B1", "B2")}
    r = run_r(tmp_path, R_SCRIPT, {b: s.assign(success=s["success"].astype(int))
                                   for b, s in subs.items()}, packages=("lme4",))
    table = pairwise_mixed(frame, "T", ["B1", "B2"], alternative="greater", alpha=0.05,
                           confidence=0.95).set_index("baseline")
    worst = 0.0
    for b, sub in subs.items():
        est, se, sdp, sdi, loglik, lr = r[f"{b}_est"]
        ours = logistic_mixed_share(sub["success"], sub["participant"], sub["item"])
        diffs = {"log_odds": abs(ours["log_odds"] - est), "se": abs(ours["se"] - se),
                 "participant_sd": abs(ours["participant_sd"] - sdp),
                 "item_sd": abs(ours["pair_sd"] - sdi), "loglik": abs(ours["loglik"] - loglik),
                 "lr": abs(ours["lr_chi2"] - lr)}
        print(f"T vs {b}: max |ours - R glmer (tight)|:", diffs)
        worst = max(worst, *diffs.values())
        # the reported row: one-sided p from the signed root of glmer's LR
        row = table.loc[b]
        assert row["log_odds"] == pytest.approx(est, abs=1e-3)
        assert row["p_value"] == pytest.approx(stats.norm.sf(np.sign(est) * np.sqrt(lr)), abs=1e-3)
        assert row["share"] == pytest.approx(1 / (1 + np.exp(-est)), abs=1e-3)
    assert worst < 1e-3
    assert table.loc["B1", "log_odds"] > 0 and table.loc["B1", "converged"]


def test_one_sided_as_declared_and_degenerate_input(frame):
    sub = contrast_choices(frame, "T", "B1")
    args = (sub["success"], sub["participant"], sub["item"])
    gr, less, two = (logistic_mixed_share(*args, alternative=a) for a in ("greater", "less", "two-sided"))
    assert gr["log_odds"] > 0 and gr["p_value"] < two["p_value"] < less["p_value"]
    assert gr["p_value"] + less["p_value"] == pytest.approx(1.0)
    assert two["p_value"] == pytest.approx(2 * gr["p_value"])
    allwin = logistic_mixed_share(np.ones(5, bool), list("abcde"), list("vwxyz"))
    assert np.isnan(allwin["p_value"]) and allwin["convergence"].startswith("not fitted")
