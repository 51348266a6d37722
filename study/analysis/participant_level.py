"""Participant-level analysis: one mean rating per participant and method.

Why: the answers of one participant are not independent (a lenient rater rates every
method high), so the answer-level Mann-Whitney test overstates the evidence. In these
designs every participant rates every method, which makes the participant the unit:
each participant's mean per method, a paired Wilcoxon signed-rank test of target vs
each baseline, and a Friedman test across all methods. Wilcoxon and Friedman are
SciPy's; the aggregation and the effect sizes (matched-pairs rank-biserial
correlation, Kendall's W) are computed here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.corrections import holm
from study.analysis.io import RATING_KINDS, compact_codes
from study.analysis.ratings import POOLED


def participant_means(answers: pd.DataFrame, methods: list[str], *, by_dataset: bool
                      ) -> pd.DataFrame:
    """Mean saliency rating per participant (rows) and method (columns).

    Pooled over data sets when `by_dataset` is False (index: participant_id), else with
    a (dataset, participant_id) index. A participant with no answer for a method has NaN.
    """
    sal = answers[answers["kind"].isin(RATING_KINDS)]
    p_idx, p_list = compact_codes(sal["participant_id"])
    m_codes, m_names = compact_codes(sal["method"])
    m_map = np.array([methods.index(c) if c in methods else -1 for c in m_names] + [-1])
    m_idx = m_map[m_codes]
    score = sal["score"].to_numpy().astype(np.float64)
    keep = m_idx >= 0
    P, M = len(p_list), len(methods)
    p_names = np.asarray(p_list, dtype=object)

    def table(mask: np.ndarray) -> pd.DataFrame:
        flat = p_idx[mask] * M + m_idx[mask]
        n = np.bincount(flat, minlength=P * M).reshape(P, M)
        s = np.bincount(flat, weights=score[mask], minlength=P * M).reshape(P, M)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, s / n, np.nan)
        present = n.sum(axis=1) > 0
        return pd.DataFrame(mean[present], index=pd.Index(p_names[present], name="participant_id"),
                            columns=list(methods))

    if not by_dataset:
        return table(keep)
    d_codes, d_names = compact_codes(sal["dataset"])
    parts = []
    for i, d in enumerate(d_names):
        t = table(keep & (d_codes == i))
        t.index = pd.MultiIndex.from_arrays([[str(d)] * len(t), t.index],
                                            names=["dataset", "participant_id"])
        parts.append(t)
    return pd.concat(parts).sort_index(level=0, sort_remaining=False)


def signed_rank_exact_p(d: np.ndarray, alternative: str) -> tuple[float, float]:
    """Exact p-value of the signed-rank statistic given the observed (tied) ranks.

    Under H0 each non-zero difference is positive or negative with probability ½
    independently, so T+ is a sum of independent ±rank terms; its distribution is built
    by dynamic programming over doubled (integer) ranks. Same distribution as all 2^n
    sign flips (SciPy's exhaustive permutation), in O(n³) instead of O(2^n).
    Returns (T+, p).
    """
    ranks2 = np.rint(2 * stats.rankdata(np.abs(d))).astype(np.int64)
    dist = np.zeros(int(ranks2.sum()) + 1)
    dist[0] = 1.0
    for r in ranks2:
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[:len(dist) - r]
        dist = 0.5 * dist + 0.5 * shifted
    t2 = int(ranks2[d > 0].sum())
    greater, less = dist[t2:].sum(), dist[:t2 + 1].sum()
    p = {"greater": greater, "less": less, "two-sided": min(1.0, 2 * min(greater, less))}[alternative]
    return t2 / 2.0, float(p)


def wilcoxon_paired(x, y, alternative: str = "greater") -> dict:
    """Wilcoxon signed-rank test of paired x - y (zero differences dropped, SciPy's
    'wilcox'). The method follows SciPy's 'auto' rule and is reported: exact when the
    non-zero differences are at most 50 with untied |differences|, or at most 13 with
    ties (all sign flips; computed by `signed_rank_exact_p`); otherwise SciPy's
    asymptotic normal approximation (tie-corrected, no continuity correction)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = x - y
    nz = d[d != 0]
    n = len(d)
    row = {"n_pairs": int(n), "n_nonzero": int(len(nz)),
           "median_difference": float(np.median(d)) if n else np.nan, "alternative": alternative}
    if len(nz) == 0:
        return {**row, "W": np.nan, "z": np.nan, "p_value": np.nan,
                "p_method": "not tested (all differences zero)", "rank_biserial": np.nan}
    ties = len(np.unique(np.abs(nz))) < len(nz)
    ranks = stats.rankdata(np.abs(nz))
    t_plus, t_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    if (len(nz) <= 50 and not ties) or len(nz) <= 13:
        _, p = signed_rank_exact_p(nz, alternative)
        z = np.nan
        method = "exact" if not ties else "exact (all sign flips, ties)"
    else:
        res = stats.wilcoxon(nz, alternative=alternative, method="asymptotic")
        p, z, method = float(res.pvalue), float(res.zstatistic), "asymptotic"
    return {**row, "W": float(t_plus), "z": z, "p_value": float(p), "p_method": method,
            "rank_biserial": float((t_plus - t_minus) / (t_plus + t_minus))}


_NO_TIE_TAILS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _no_tie_tails(m: int) -> tuple[np.ndarray, np.ndarray]:
    """(P(T+ >= t), P(T+ <= t)) for t = 0..m(m+1)/2 with ranks 1..m (no ties), cached."""
    if m not in _NO_TIE_TAILS:
        dist = np.zeros(m * (m + 1) // 2 + 1)
        dist[0] = 1.0
        for r in range(1, m + 1):
            shifted = np.zeros_like(dist)
            shifted[r:] = dist[:len(dist) - r]
            dist = 0.5 * dist + 0.5 * shifted
        _NO_TIE_TAILS[m] = (np.cumsum(dist[::-1])[::-1], np.cumsum(dist))
    return _NO_TIE_TAILS[m]


def wilcoxon_pvalues(d: np.ndarray, alternative: str = "greater") -> np.ndarray:
    """p-values of `wilcoxon_paired` for every row of differences d (sims, n), with the
    same method rule, vectorised for power simulations. NaN where all are zero."""
    d = np.asarray(d, dtype=np.float64)
    sims, n = d.shape
    a = np.abs(d)
    order = np.argsort(a, axis=1, kind="stable")
    sd = np.take_along_axis(d, order, axis=1)
    sa = np.abs(sd)
    m = (sd != 0).sum(axis=1)
    ties = ((np.diff(sa, axis=1) == 0) & (sa[:, 1:] != 0)).any(axis=1)
    out = np.full(sims, np.nan)
    exact_plain = (m > 0) & (m <= 50) & ~ties
    if exact_plain.any():
        rank = np.arange(n)[None, :] - (n - m)[:, None] + 1  # zeros sort first
        t_plus = (np.where(sd > 0, rank, 0)).sum(axis=1)
        for mm in np.unique(m[exact_plain]):
            rows = exact_plain & (m == mm)
            ge, le = _no_tie_tails(int(mm))
            t = t_plus[rows]
            p = {"greater": ge[t], "less": le[t],
                 "two-sided": np.minimum(1.0, 2 * np.minimum(ge[t], le[t]))}[alternative]
            out[rows] = p
    exact_ties = (m > 0) & (m <= 13) & ties
    for i in np.flatnonzero(exact_ties):
        out[i] = signed_rank_exact_p(d[i][d[i] != 0], alternative)[1]
    asym = (m > 0) & ~exact_plain & ~exact_ties
    if asym.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            out[asym] = stats.wilcoxon(d[asym], axis=1, alternative=alternative,
                                       method="asymptotic").pvalue
    return out


def mean_difference_ci(d: np.ndarray, confidence: float = 0.95) -> dict:
    """Mean of participant differences with its Student t interval (participant level:
    one value per participant, so the interval does not treat answers as independent)."""
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    if n < 2:
        return {"mean_difference": float(d.mean()) if n else np.nan, "ci_low": np.nan,
                "ci_high": np.nan, "ci_level": confidence}
    m, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(n))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return {"mean_difference": m, "ci_low": m - half, "ci_high": m + half,
            "ci_level": confidence}


def wilcoxon_vs_target(means: pd.DataFrame, target: str, baselines: list[str], *,
                       alternative: str = "greater", alpha: float = 0.05,
                       confidence: float = 0.95) -> pd.DataFrame:
    """Paired Wilcoxon of participant means, target vs each baseline, pooled and per data set.

    `means` is `participant_means(..., by_dataset=False)` or the by-dataset table; pass
    both through `participant_tests`. Participants missing either method are dropped
    from that comparison (n_pairs says how many remain). W is the sum of the ranks of
    positive differences (target above baseline).
    """
    rows = []
    for b in baselines:
        pair = means[[target, b]].dropna()
        rows.append({"target": target, "baseline": b,
                     **wilcoxon_paired(pair[target].to_numpy(), pair[b].to_numpy(), alternative),
                     **mean_difference_ci(pair[target].to_numpy() - pair[b].to_numpy(),
                                          confidence)})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    return out


def friedman(means: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Friedman test across methods on participants who rated every method (SciPy), as a
    tidy one-row table (pingouin style): test, statistic, chi2, dof, p_value, p_method,
    effect size Kendall's W = chi2 / (n·(k−1)), alternative, n_participants, k_methods."""
    row = friedman_row(means, methods)
    return pd.DataFrame([{"test": "Friedman", "statistic": "chi2", **row, "alternative": "two-sided"}])


def wilcoxon(x, y, alternative: str = "greater") -> pd.DataFrame:
    """Wilcoxon signed-rank test of paired x - y as a tidy one-row table (pingouin style):
    test, statistic ("W"), W, z, p_value, p_method, alternative, effect size rank_biserial,
    n_pairs, n_nonzero, median_difference. The row is `wilcoxon_paired`'s."""
    return pd.DataFrame([{"test": "Wilcoxon signed-rank", "statistic": "W",
                          **wilcoxon_paired(x, y, alternative)}])


def friedman_row(means: pd.DataFrame, methods: list[str]) -> dict:
    """The fields of `friedman` as a dict (to build tables of several tests)."""
    full = means[methods].dropna()
    n, k = len(full), len(methods)
    row = {"methods": ", ".join(methods), "n_participants": int(n), "k_methods": int(k),
           "dof": k - 1}
    if k < 3 or n < 2:
        return {**row, "chi2": np.nan, "p_value": np.nan, "kendall_w": np.nan,
                "p_method": "not tested (needs >= 3 methods and >= 2 complete participants)"}
    res = stats.friedmanchisquare(*[full[m].to_numpy() for m in methods])
    return {**row, "chi2": float(res.statistic), "p_value": float(res.pvalue),
            "kendall_w": float(res.statistic / (n * (k - 1))),
            "p_method": "chi-square approximation, tie-corrected"}


def participant_tests(answers: pd.DataFrame, methods: list[str], target: str,
                      baselines: list[str], *, alternative: str = "greater",
                      alpha: float = 0.05, confidence: float = 0.95) -> dict[str, pd.DataFrame]:
    """All participant-level tables: means (long), wilcoxon, friedman; pooled and per data set.

    Holm's correction runs within each family (pooled; per data set over all data sets
    and baselines), as in the answer-level table.
    """
    pooled = participant_means(answers, methods, by_dataset=False)
    per = participant_means(answers, methods, by_dataset=True)
    wil = [wilcoxon_vs_target(pooled, target, baselines, alternative=alternative, alpha=alpha,
                              confidence=confidence)
           .assign(family="pooled", dataset=POOLED)]
    fri = [{"family": "pooled", "dataset": POOLED, **friedman_row(pooled, methods)}]
    for d in per.index.get_level_values(0).unique():
        sub = per.xs(d, level=0)
        wil.append(wilcoxon_vs_target(sub, target, baselines, alternative=alternative, alpha=alpha,
                                      confidence=confidence)
                   .assign(family="per dataset", dataset=d))
        fri.append({"family": "per dataset", "dataset": d, **friedman_row(sub, methods)})
    wil_df = pd.concat(wil, ignore_index=True)
    per_sel = wil_df["family"] == "per dataset"
    wil_df.loc[per_sel, "p_holm"] = holm(wil_df.loc[per_sel, "p_value"].to_numpy())
    wil_df["reject"] = wil_df["p_holm"] < alpha
    wil_df["alpha"] = alpha
    front = ["family", "dataset", "target", "baseline"]
    wil_df = wil_df[front + [c for c in wil_df.columns if c not in front]]
    long = pooled.reset_index().melt(id_vars="participant_id", var_name="method",
                                     value_name="mean_score").assign(dataset=POOLED)
    long_d = per.reset_index().melt(id_vars=["dataset", "participant_id"], var_name="method",
                                    value_name="mean_score")
    means_long = pd.concat([long_d, long], ignore_index=True)[
        ["dataset", "participant_id", "method", "mean_score"]].dropna()
    return {"means": means_long, "wilcoxon": wil_df, "friedman": pd.DataFrame(fri),
            "method_means": method_means_ci(means_long, methods, confidence)}


def method_means_ci(means_long: pd.DataFrame, methods: list[str], confidence: float = 0.95
                    ) -> pd.DataFrame:
    """Per data set (and pooled) and method: the mean of participant means with its t
    interval over participants (the participant-level counterpart of descriptives)."""
    rows = []
    for (dataset, method), g in means_long.groupby(["dataset", "method"], sort=False):
        ci = mean_difference_ci(g["mean_score"].to_numpy(), confidence)
        rows.append({"dataset": dataset, "method": method, "participants": int(len(g)),
                     "mean": ci["mean_difference"], "ci_low": ci["ci_low"],
                     "ci_high": ci["ci_high"], "ci_level": confidence})
    out = pd.DataFrame(rows)
    if len(out):
        out["method"] = pd.Categorical(out["method"], categories=methods, ordered=True)
        out = out.sort_values(["method", "dataset"], kind="stable").reset_index(drop=True)
        out["method"] = out["method"].astype(str)
    return out
