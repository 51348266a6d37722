"""The CLMM with by-participant random slopes for method (study/analysis/clmm_re.py):
exact gradient, and agreement with R's ordinal::clmm on seeded data, for the maximal
model `(1 + method | participant) + (1 | item)` and the uncorrelated fallback."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.analysis import clmm_re as R
from tests.r_reference import run_r

THETA = np.array([-1.5, -0.5, 0.4, 1.3])
CHOL = np.array([[0.9, 0.0, 0.0], [0.45, 0.6, 0.0], [-0.3, 0.25, 0.7]])


def slopes_data(participants=24, items=30, *, seed=0, chol=CHOL, sd_item=0.6,
                effects=(0.5, -0.3), frac=1.0) -> pd.DataFrame:
    """Ratings from the maximal CLMM: 3 methods over items (items nested in methods),
    2 data sets, participant intercepts and method slopes with covariance chol chol'."""
    rng = np.random.default_rng(seed)
    meth, ds = np.arange(items) % 3, (np.arange(items) // 3) % 2
    p, i = np.meshgrid(np.arange(participants), np.arange(items), indexing="ij")
    keep = rng.random(p.shape) < frac
    p, i = p[keep], i[keep]
    b = rng.normal(size=(participants, 3)) @ np.asarray(chol).T
    m = meth[i]
    eta = (np.array([0.0, *effects])[m] + 0.3 * ds[i] + b[p, 0] + np.where(m > 0, b[p, m], 0.0)
           + rng.normal(0, sd_item, items)[i])
    cum = 1 / (1 + np.exp(-(THETA[None, :] - eta[:, None])))
    y = (rng.random(len(p))[:, None] > cum).sum(axis=1)
    return pd.DataFrame({"participant": [f"p{k:03d}" for k in p], "item": [f"t{k:03d}" for k in i],
                         "method": [f"m{k}" for k in m], "dataset": [f"d{k}" for k in ds[i]],
                         "rating": y + 1})


def design(df, *, correlated=True):
    D = np.column_stack([df.method == "m1", df.method == "m2"]).astype(float)
    X = np.column_stack([D, df.dataset == "d1"]).astype(float)
    Zp = np.column_stack([np.ones(len(df)), D])
    cols = ["(Intercept)", "methodm1", "methodm2"]
    if correlated:
        terms = [R.make_term("participant", df.participant, Zp, cols)]
    else:
        terms = [R.make_term("participant", df.participant, Zp, cols, correlated=False)]
    terms.append(R.make_term("item", df.item))
    return df.rating.to_numpy() - 1, X, terms


def test_gradient_is_exact():
    df = slopes_data(12, 15, seed=3)
    y, X, terms = design(df)
    m = R._Model(y, X, terms, 5)
    nat = np.array([-1.2, -0.3, 0.5, 1.1, 0.3, -0.2, 0.1,
                    0.7, 0.1, 0.05, 0.3, 0.1, 0.25, 0.5])
    _, g = m.laplace(nat)
    f = lambda x: m.laplace(x, gradient=False)[0]  # noqa: E731
    h = 1e-6
    fd = np.array([(f(nat + h * e) - f(nat - h * e)) / (2 * h) for e in np.eye(len(nat))])
    np.testing.assert_allclose(g, fd, atol=1e-5)


R_SCRIPT = r"""
d <- read.csv("data.csv"); d$rating <- factor(d$rating, ordered = TRUE)
d$mb <- as.numeric(d$method == "m1"); d$mc <- as.numeric(d$method == "m2")
ctl <- clmm.control(gradTol = 1e-6, maxIter = 1000)
re <- function(m) {
  out <- list()
  for (k in seq_along(m$ST)) {
    L <- m$ST[[k]]; S <- L %*% t(L)
    out[[length(out) + 1]] <- obj(list(factor = sprintf('"%s"', names(m$ST)[k]),
      columns = paste0("[", paste0('"', colnames(L), '"', collapse = ","), "]"),
      sd = num(sqrt(diag(S))), corr = num(cov2cor(S))))
  }
  paste0("[", paste(out, collapse = ", "), "]")
}
se <- function(m) if (is.null(m$Hessian)) num(numeric(0)) else
  num(unname(sqrt(diag(vcov(m)))[1:length(coef(m))]))
res <- function(m) obj(list(coef = num(unname(coef(m))), se = se(m),
                            loglik = sprintf("%.12g", as.numeric(logLik(m))), re = re(m)))
t0 <- proc.time()[["elapsed"]]
# no Hessian for the maximal fit: R's numerical Hessian doubles its time (the standard
# errors are compared on the uncorrelated fit)
mx <- clmm(rating ~ method + dataset + (1 + method | participant) + (1 | item), data = d,
           Hess = FALSE, control = ctl)
t1 <- proc.time()[["elapsed"]]
un <- clmm(rating ~ method + dataset + (1 | participant) + (0 + mb | participant) +
           (0 + mc | participant) + (1 | item), data = d, Hess = TRUE, control = ctl)
cat(obj(list(maximal = res(mx), uncorrelated = res(un), seconds = sprintf("%.3f", t1 - t0))), "\n")
"""


@pytest.fixture(scope="module")
def r_slopes(tmp_path_factory):
    df = slopes_data(16, 18, seed=5)
    return df, run_r(tmp_path_factory.mktemp("slopes_r"), R_SCRIPT, {"data": df})


def _sd_corr(fit):
    out = {}
    for t in fit.terms:
        for a, ca in enumerate(t["columns"]):
            out[(t["factor"], ca)] = t["sd"][a]
            for b, cb in enumerate(t["columns"]):
                if b > a:
                    out[(t["factor"], ca, cb)] = t["corr"][a, b]
    return out


def _r_sd_corr(r):
    out = {}
    for t in r["re"]:
        cols = t["columns"]
        q = len(cols)
        corr = np.asarray(t["corr"]).reshape(q, q)
        for a, ca in enumerate(cols):
            name = "(Intercept)" if ca == "(Intercept)" else {"mb": "methodm1", "mc": "methodm2"
                                                               }.get(ca, ca)
            out[(t["factor"], name)] = t["sd"][a]
            for b, cb in enumerate(cols):
                if b > a:
                    out[(t["factor"], name, cb)] = corr[a, b]
    return out


@pytest.mark.parametrize("structure", ["maximal", "uncorrelated"])
def test_agrees_with_r_clmm(r_slopes, structure):
    df, r = r_slopes
    y, X, terms = design(df, correlated=structure == "maximal")
    fit = R.fit_clmm_re(y, X, terms)
    rr = r[structure]
    assert fit.convergence["converged"], fit.convergence
    ours = np.concatenate([fit.thresholds, fit.beta])
    diffs = {"coefficients": np.abs(ours - rr["coef"]).max(),
             "loglik": abs(fit.loglik - rr["loglik"])}
    if rr["se"]:
        diffs["se"] = np.abs(fit.se - rr["se"]).max()
    mine, theirs = _sd_corr(fit), _r_sd_corr(rr)
    assert set(theirs) <= set(mine), (theirs.keys(), mine.keys())
    sd_keys = [k for k in theirs if len(k) == 2]
    corr_keys = [k for k in theirs if len(k) == 3]
    diffs["sd"] = max(abs(mine[k] - theirs[k]) for k in sd_keys)
    if corr_keys:
        diffs["corr"] = max(abs(mine[k] - theirs[k]) for k in corr_keys)
    print(f"max |ours - R| ({structure}, R fit {r['seconds']} s):", diffs)
    assert max(diffs.values()) < 1e-3
    assert not fit.singular


def as_answers(df: pd.DataFrame) -> pd.DataFrame:
    """The columns of io.load_answers that the mixed model reads."""
    return pd.DataFrame({"kind": "saliency", "participant_id": df.participant, "item_id": df.item,
                         "method": df.method, "dataset": df.dataset, "score": df.rating})


def test_maximal_structure_is_kept_when_it_fits():
    from study.analysis.mixed import clmm_ratings

    out = clmm_ratings(as_answers(slopes_data(16, 18, seed=5)), "m0", ["m1", "m2"],
                       scale=(1, 2, 3, 4, 5))
    s = out["structure"].iloc[0]
    assert s["structure"] == "maximal" and s["fallback_reason"] == ""
    assert s["line"] == "fitted: rating ~ method + dataset + (1 + method | participant) + (1 | item)"
    v = out["variance"]
    assert list(v["factor"]) == ["participant"] * 3 + ["item"]
    c = out["contrasts"]
    assert (c["lr_chi2"] >= 0).all() and c["p_value"].between(0, 1).all()
    assert (c["profile_ci_low"] < c["log_odds_ratio"]).all()
    assert (c["log_odds_ratio"] < c["profile_ci_high"]).all()
    # the warm-started refits without a Hessian give the cold refit's likelihood ratio
    from study.analysis.mixed import fit_structure

    d, fit = out["design"], out["fit"]
    cold = fit_structure(d, "maximal", np.delete(d["X"], 0, axis=1))
    assert c["lr_chi2"].iloc[0] == pytest.approx(2 * (fit.loglik - cold.loglik), abs=1e-5)
    probs = out["probabilities"]
    assert set(probs["kind"]) == {"conditional", "population-averaged"}
    assert list(out["proportional_odds"]["term"]) == ["method", "dataset"]


def test_one_method_per_participant_falls_back_in_one_line():
    """Each participant sees one method only: the slopes are not identifiable; the
    declared fallback (intercepts) is fitted and the reason is one line."""
    from study.analysis.mixed import clmm_ratings

    df = slopes_data(18, 18, seed=1)
    pnum = df.participant.str[1:].astype(int)
    df = df[df.method == [f"m{k % 3}" for k in pnum]]
    out = clmm_ratings(as_answers(df), "m0", ["m1", "m2"], scale=(1, 2, 3, 4, 5))
    s = out["structure"].iloc[0]
    assert s["structure"] == "intercepts"
    assert "one method only" in s["fallback_reason"] and "\n" not in s["line"]
    assert s["line"].startswith("fitted: rating ~ method + dataset + (1 | participant) + (1 | item); "
                                "fallback because maximal: every participant rated one method")
    assert list(out["attempts"]["used"]) == [False, False, True]


def test_singular_maximal_falls_back():
    """Seeded data whose maximal fit is singular (a correlation at ±1): the next
    declared structure is used and the reason names the singular fit."""
    from study.analysis.mixed import clmm_ratings

    out = clmm_ratings(as_answers(slopes_data(16, 18, seed=0)), "m0", ["m1", "m2"],
                       scale=(1, 2, 3, 4, 5))
    s = out["structure"].iloc[0]
    assert s["structure"] != "maximal"
    assert s["fallback_reason"].startswith("maximal: singular fit")


R_PROFILE = r"""
d <- read.csv("data.csv"); d$rating <- factor(d$rating, ordered = TRUE)
m <- clm(rating ~ method + dataset, data = d)
ci <- confint(m, level = 0.95)            # profile likelihood (confint.clm's default)
d$mb <- as.numeric(d$method == "m1"); d$mc <- as.numeric(d$method == "m2")
lr <- c(anova(m, clm(rating ~ mc + dataset, data = d))$LR.stat[2],
        anova(m, clm(rating ~ mb + dataset, data = d))$LR.stat[2])
cat(obj(list(coef = num(coef(m)[c("methodm1", "methodm2")]), lr = num(lr),
             low = num(ci[c("methodm1", "methodm2"), 1]), high = num(ci[c("methodm1", "methodm2"), 2]),
             loglik = num(as.numeric(logLik(m))))), "\n")
"""


def test_profile_interval_agrees_with_r_clm(tmp_path):
    """Profile-likelihood intervals of the method effects: R's confint(clm) (profile)."""
    df = slopes_data(16, 18, seed=5)
    r = run_r(tmp_path, R_PROFILE, {"data": df})
    y, X, _ = design(df)
    fit = R.fit_clmm_re(y, X, [])
    assert abs(fit.loglik - r["loglik"][0]) < 1e-6
    diffs = []
    for j in range(2):
        rest = np.delete(X, j, axis=1)

        def refit(b, j=j, rest=rest):
            return R.fit_clmm_re(y, rest, [], offset=b * X[:, j]).loglik

        lo, hi = R.profile_interval(refit, fit.loglik, fit.beta[j], fit.se[4 + j])
        diffs += [abs(lo - r["low"][j]), abs(hi - r["high"][j]), abs(fit.beta[j] - r["coef"][j])]
        # the likelihood-ratio test of the contrast (R: anova of the nested clm fits)
        lr = 2 * (fit.loglik - R.fit_clmm_re(y, rest, []).loglik)
        diffs.append(abs(lr - r["lr"][j]))
    print("max |ours - R| (profile CI and LR test on clm):", max(diffs))
    assert max(diffs) < 1e-3


def test_parametric_bootstrap_option():
    """The bootstrap p-value of each contrast lies on the (1 + k) / (B + 1) grid and is
    reported beside the chi-square one; a contrast far from the null gets the smallest."""
    from study.analysis.mixed import clmm_ratings

    df = slopes_data(12, 12, seed=5, effects=(-2.0, 0.0))
    out = clmm_ratings(as_answers(df), "m0", ["m1", "m2"], scale=(1, 2, 3, 4, 5),
                       structure="intercepts", profile=False, bootstrap=9, seed=2)
    c = out["contrasts"]
    assert (c["p_value"] == c["p_bootstrap"]).all()
    assert np.allclose(c["p_bootstrap"] * 10, np.round(c["p_bootstrap"] * 10))
    assert c["p_bootstrap"].iloc[0] == pytest.approx(0.1)    # m0 far above m1
    assert "parametric bootstrap (9 draws)" in c["test"].iloc[0]


def test_design_too_large_for_the_dense_solver(monkeypatch):
    """Beyond the dense solver's size the declared fallback reaches the crossed-intercept
    engine (clmm.py), says why, and the contrasts keep Wald intervals."""
    import study.analysis.clmm_re as re_mod
    from study.analysis.clmm import ClmmFit
    from study.analysis.mixed import clmm_ratings

    monkeypatch.setattr(re_mod, "MAX_RANDOM", 20)
    out = clmm_ratings(as_answers(slopes_data(16, 18, seed=5)), "m0", ["m1", "m2"],
                       scale=(1, 2, 3, 4, 5))
    assert isinstance(out["fit"], ClmmFit)
    assert "more than the 20 the slope model holds" in out["structure"].iloc[0]["fallback_reason"]
    c = out["contrasts"]
    assert c["profile_ci_low"].isna().all() and c["or_ci_low"].notna().all()
    assert (c["lr_chi2"] >= 0).all()


R_REDUCED = r"""
d <- read.csv("data.csv"); d$rating <- factor(d$rating, ordered = TRUE)
d$mb <- as.numeric(d$method == "m1"); d$mc <- as.numeric(d$method == "m2")
ctl <- clmm.control(gradTol = 1e-6, maxIter = 1000)
full <- clmm(rating ~ mb + mc + dataset + (1 | participant) + (0 + mb | participant) +
             (0 + mc | participant) + (1 | item), data = d, Hess = FALSE, control = ctl)
red <- clmm(rating ~ mc + dataset + (1 | participant) + (0 + mb | participant) +
            (0 + mc | participant) + (1 | item), data = d, Hess = FALSE, control = ctl)
cat(obj(list(lr = num(as.numeric(2 * (logLik(full) - logLik(red)))))), "\n")
"""


def test_reduced_fit_leaves_a_stuck_variance_and_matches_r(tmp_path):
    """A variance at 0 is a stationary point of the Laplace objective: a reduced model
    (likelihood-ratio null of target = m1) warm-started with a variance at 0 stays there.
    Here the start is put there by hand (the m2 slope SD of the uncorrelated fit; on the
    agreement data of test_analysis_clmm_interaction the optimiser walked onto it) and
    mixed.reduced_fit refits from the default start and keeps the better fit, so the LR
    is R's."""
    import dataclasses

    from study.analysis.mixed import (_start_without, fit_structure, fit_with_fallback,
                                      ratings_design, reduced_fit)

    df = slopes_data(16, 18, seed=5)
    d = ratings_design(as_answers(df), ["m0", "m1", "m2"], (1, 2, 3, 4, 5))
    fit, used, _att, _why = fit_with_fallback(d, ["m0", "m1", "m2"], start="uncorrelated")
    assert used == "uncorrelated" and not fit.singular
    j = len(fit.thresholds) + len(fit.beta) + 2       # participant: intercept, m1, m2 slope SDs
    nat = np.array(fit.nat)
    nat[j] = 0.0
    stuck = dataclasses.replace(fit, nat=nat)
    warm = fit_structure(d, used, np.delete(d["X"], [0], axis=1), start=_start_without(stuck, [0]),
                         hessian=False)
    fixed = reduced_fit(d, used, stuck, [0])
    lr_warm, lr = 2 * (fit.loglik - warm.loglik), 2 * (fit.loglik - fixed.loglik)
    r = run_r(tmp_path, R_REDUCED, {"data": df})
    print(f"LR of target = m1: stuck warm start {lr_warm:.4f}, refitted {lr:.6f}, "
          f"R ordinal::clmm {r['lr'][0]:.6f}")
    assert warm.singular and lr_warm > lr + 1.0          # stuck: LR inflated
    assert not fixed.singular and abs(lr - r["lr"][0]) < 1e-3
