"""Mann-Whitney U test computed from count tables, with effect sizes and their CIs.

Why from counts: ratings have a handful of levels, so with cx, cy the counts of each
level in the two samples, U = Σ_k cx_k·(#y below k + ½·cy_k) exactly, and the tie
correction needs only the level totals. The same arithmetic runs on arrays of shape
(..., K), so every comparison of a report (and every simulated study of the power
analysis) is one vectorised expression.

p-values:
- "asymptotic" (default): normal approximation with the tie-corrected variance
  σ² = n1·n2/12·((N+1) − Σ(t³−t)/(N(N−1))) and, by default, a continuity correction of
  ½, exactly as scipy.stats.mannwhitneyu(method="asymptotic").
- "exact": the exact permutation distribution of U given the observed ties, by
  dynamic programming over levels (for small samples; refused when too large).
- "permutation": Monte Carlo permutation test; each permutation is one multivariate
  hypergeometric draw of the first sample's counts (seeded).

Effect sizes: the common-language effect size CLES = P(X > Y) + ½P(X = Y) = U/(n1·n2)
(the AUC) and the rank-biserial correlation r = 2·CLES − 1. Their CIs come from
DeLong's variance of the AUC computed from the counts (normal approximation, clipped
to the valid range), or on request from a seeded percentile bootstrap that resamples
each sample's counts multinomially.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from study.errors import StudyError

ALTERNATIVES = ("greater", "less", "two-sided")
METHODS = ("asymptotic", "exact", "permutation")
EXACT_LIMIT = 5_000_000  # n1 * (2*n1*n2 + 1) DP cells above which "exact" is refused


def _below(c: np.ndarray) -> np.ndarray:
    """Counts strictly below each level: exclusive cumulative sum along the last axis."""
    return np.cumsum(c, axis=-1) - c


def u_statistic(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """U of the first sample (pairs x > y plus half the ties), from counts (..., K)."""
    cx = np.asarray(cx, dtype=np.float64)
    cy = np.asarray(cy, dtype=np.float64)
    return (cx * (_below(cy) + 0.5 * cy)).sum(axis=-1)


def mwu_from_counts(cx, cy, alternative: str = "greater", continuity: bool = True
                    ) -> dict[str, np.ndarray]:
    """U, tie-corrected z and asymptotic p-value from counts; broadcasts over (..., K).

    Returns arrays: n1, n2, U (of x), z (signed, for x), p, auc (CLES), rank_biserial.
    When every answer is tied (zero variance) z = 0 and p = 1.
    """
    if alternative not in ALTERNATIVES:
        raise StudyError(f"alternative {alternative!r} is not one of {', '.join(ALTERNATIVES)}")
    cx = np.asarray(cx, dtype=np.float64)
    cy = np.asarray(cy, dtype=np.float64)
    n1, n2 = cx.sum(axis=-1), cy.sum(axis=-1)
    N = n1 + n2
    u = u_statistic(cx, cy)
    t = cx + cy
    ties = (t ** 3 - t).sum(axis=-1)
    mu = n1 * n2 / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(n1 * n2 / 12.0 * ((N + 1) - ties / (N * (N - 1))))
        cc = 0.5 if continuity else 0.0
        if alternative == "greater":
            z = (u - mu - cc) / sigma
            p = stats.norm.sf(z)
        elif alternative == "less":
            z = (u - mu + cc) / sigma
            p = stats.norm.cdf(z)
        else:
            big = np.maximum(u, n1 * n2 - u)
            p = np.minimum(2.0 * stats.norm.sf((big - mu - cc) / sigma), 1.0)
            z = np.sign(u - mu) * np.maximum(np.abs(u - mu) - cc, 0.0) / sigma
        auc = u / (n1 * n2)
    # every answer tied (sigma = 0): no evidence either way; SciPy gives 1 or NaN here
    flat = (sigma == 0) & (n1 > 0) & (n2 > 0)
    z = np.where(flat, 0.0, z)
    p = np.where(flat, 1.0, p)
    return {"n1": n1, "n2": n2, "U": u, "z": z, "p": p, "auc": auc,
            "rank_biserial": 2.0 * auc - 1.0}


def delong_ci(cx, cy, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong standard error of the AUC and its normal CI (clipped to [0, 1]), from counts.

    Each x at level k has placement V10 = (#y below k + ½·#y at k)/n2, each y at level k
    V01 = (#x above k + ½·#x at k)/n1; Var(AUC) = s²(V10)/n1 + s²(V01)/n2.
    Returns (se, low, high) broadcast over (...).
    """
    cx = np.asarray(cx, dtype=np.float64)
    cy = np.asarray(cy, dtype=np.float64)
    n1, n2 = cx.sum(axis=-1), cy.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u_statistic(cx, cy) / (n1 * n2)
        v10 = (_below(cy) + 0.5 * cy) / n2[..., None]
        above_x = n1[..., None] - np.cumsum(cx, axis=-1)
        v01 = (above_x + 0.5 * cx) / n1[..., None]
        s10 = (cx * (v10 - auc[..., None]) ** 2).sum(axis=-1) / (n1 - 1)
        s01 = (cy * (v01 - auc[..., None]) ** 2).sum(axis=-1) / (n2 - 1)
        se = np.sqrt(s10 / n1 + s01 / n2)
    zc = stats.norm.ppf(0.5 + confidence / 2)
    return se, np.clip(auc - zc * se, 0.0, 1.0), np.clip(auc + zc * se, 0.0, 1.0)


def bootstrap_auc_ci(cx, cy, n_resamples: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the AUC: each sample's counts resampled multinomially."""
    cx = np.asarray(cx, dtype=np.int64)
    cy = np.asarray(cy, dtype=np.int64)
    rng = np.random.default_rng(seed)
    bx = rng.multinomial(cx.sum(), cx / cx.sum(), size=n_resamples)
    by = rng.multinomial(cy.sum(), cy / cy.sum(), size=n_resamples)
    auc = u_statistic(bx, by) / (cx.sum() * cy.sum())
    a = (1 - confidence) / 2
    lo, hi = np.quantile(auc, [a, 1 - a])
    return float(lo), float(hi)


def exact_distribution(cx, cy) -> tuple[np.ndarray, np.ndarray]:
    """Exact null distribution of U given the pooled level totals.

    Under H0 the first sample's counts are multivariate hypergeometric. Levels are
    processed in order; the state is (x placed so far, 2U so far) and placing a of the
    t_k items of level k in x adds 2a·(#y below) + a·(t_k − a) to 2U.
    Returns (u_values, probabilities).
    """
    cx = np.asarray(cx, dtype=np.int64)
    cy = np.asarray(cy, dtype=np.int64)
    n1, n2 = int(cx.sum()), int(cy.sum())
    if n1 * (2 * n1 * n2 + 1) > EXACT_LIMIT:
        raise StudyError(f"exact Mann-Whitney p-value refused for samples of {n1} and {n2} "
                         f"answers (too large); use --mw-method permutation or asymptotic")
    t = cx + cy
    width = 2 * n1 * n2 + 1
    prob = np.zeros((n1 + 1, width))
    prob[0, 0] = 1.0
    placed_total = 0  # items of earlier levels
    remaining = n1 + n2
    for tk in t:
        tk = int(tk)
        new = np.zeros_like(prob)
        for m in range(0, n1 + 1):
            row = prob[m]
            if not row.any():
                continue
            y_below = placed_total - m
            if y_below < 0:
                continue
            a = np.arange(0, min(tk, n1 - m) + 1)
            pa = stats.hypergeom.pmf(a, remaining, tk, n1 - m)
            for ai, pai in zip(a, pa):
                if pai == 0.0:
                    continue
                shift = int(2 * ai * y_below + ai * (tk - ai))
                if shift:
                    new[m + ai, shift:] += pai * row[:width - shift]
                else:
                    new[m + ai] += pai * row
        prob = new
        placed_total += tk
        remaining -= tk
    dist = prob[n1]
    return np.arange(width) / 2.0, dist


def _exact_p(cx, cy, alternative: str) -> float:
    u_vals, dist = exact_distribution(cx, cy)
    u = float(u_statistic(cx, cy))
    n1n2 = float(np.sum(cx) * np.sum(cy))
    eps = 1e-9
    if alternative == "greater":
        return float(min(1.0, dist[u_vals >= u - eps].sum()))
    if alternative == "less":
        return float(min(1.0, dist[u_vals <= u + eps].sum()))
    # two-sided: twice the smaller one-sided p-value (SciPy's permutation_test convention)
    del n1n2
    return float(min(1.0, 2 * min(dist[u_vals >= u - eps].sum(), dist[u_vals <= u + eps].sum())))


def _permutation_p(cx, cy, alternative: str, n_resamples: int, seed: int) -> float:
    cx = np.asarray(cx, dtype=np.int64)
    cy = np.asarray(cy, dtype=np.int64)
    rng = np.random.default_rng(seed)
    px = rng.multivariate_hypergeometric(cx + cy, int(cx.sum()), size=n_resamples)
    u_perm = u_statistic(px, (cx + cy) - px)
    u = float(u_statistic(cx, cy))
    eps = 1e-9
    p_greater = ((u_perm >= u - eps).sum() + 1) / (n_resamples + 1)
    p_less = ((u_perm <= u + eps).sum() + 1) / (n_resamples + 1)
    if alternative == "greater":
        return float(p_greater)
    if alternative == "less":
        return float(p_less)
    return float(min(1.0, 2 * min(p_greater, p_less)))


def mann_whitney_counts(cx, cy, *, alternative: str = "greater", method: str = "asymptotic",
                        continuity: bool = True, confidence: float = 0.95,
                        bootstrap: int = 0, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """One Mann-Whitney comparison from two count vectors; a dict of the tidy row."""
    if method not in METHODS:
        raise StudyError(f"Mann-Whitney method {method!r} is not one of {', '.join(METHODS)}")
    r = mwu_from_counts(cx, cy, alternative, continuity)
    n1, n2 = int(r["n1"]), int(r["n2"])
    if n1 == 0 or n2 == 0:
        raise StudyError(f"Mann-Whitney test needs answers in both samples (got {n1} and {n2})")
    p = float(r["p"])
    if method == "exact":
        p = _exact_p(cx, cy, alternative)
        used = "exact (ties kept, dynamic programming)"
    elif method == "permutation":
        p = _permutation_p(cx, cy, alternative, n_resamples, seed)
        used = f"permutation ({n_resamples} resamples, seed {seed})"
    else:
        used = "asymptotic, tie-corrected" + (", continuity-corrected" if continuity else "")
    if bootstrap:
        lo, hi = bootstrap_auc_ci(cx, cy, bootstrap, confidence, seed)
        ci_method = f"percentile bootstrap ({bootstrap} resamples, seed {seed})"
    else:
        _, lo, hi = delong_ci(cx, cy, confidence)
        lo, hi = float(lo), float(hi)
        ci_method = "DeLong normal approximation"
    return {
        "n_x": n1, "n_y": n2, "U": float(r["U"]), "z": float(r["z"]), "p_value": p,
        "alternative": alternative, "p_method": used,
        "rank_biserial": float(r["rank_biserial"]),
        "rank_biserial_ci_low": 2 * lo - 1, "rank_biserial_ci_high": 2 * hi - 1,
        "cles": float(r["auc"]), "cles_ci_low": lo, "cles_ci_high": hi,
        "ci_level": confidence, "ci_method": ci_method,
    }


def to_counts(x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count vectors of two raw samples over the sorted union of their values."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if np.isnan(x).any() or np.isnan(y).any():
        raise StudyError("Mann-Whitney test: samples contain NaN")
    levels, inv = np.unique(np.concatenate([x, y]), return_inverse=True)
    k = len(levels)
    return (np.bincount(inv[:len(x)], minlength=k), np.bincount(inv[len(x):], minlength=k),
            levels)


def mann_whitney(x, y, *, alternative: str = "greater", method: str = "asymptotic",
                 continuity: bool = True, confidence: float = 0.95, bootstrap: int = 0,
                 n_resamples: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Mann-Whitney U test of two raw samples (pingouin-style one-row DataFrame).

    Columns: n_x, n_y, U (of x), z, p_value, alternative, p_method, rank_biserial and
    its CI, cles and its CI, ci_level, ci_method. "greater" tests that x tends to be
    larger than y.
    """
    cx, cy, _ = to_counts(x, y)
    row = mann_whitney_counts(cx, cy, alternative=alternative, method=method,
                              continuity=continuity, confidence=confidence,
                              bootstrap=bootstrap, n_resamples=n_resamples, seed=seed)
    return pd.DataFrame([row])
