"""Sample-size planning for the one-sided Mann-Whitney test, by seeded simulation.

Why simulation: the ratings are ordinal with many ties, so closed-form power formulas
for the U test are poor approximations. A simulated study is a pair of count tables,
and the count-based U/z of `mannwhitney.mwu_from_counts` tests thousands of them in
one vectorised call.

Two ways to simulate a study of n participants:
- "multinomial" (assumed score distributions, or pilot counts pooled): each group's
  n·items answers are one multinomial draw. This treats answers as independent, as
  the answer-level test does.
- "bootstrap" (pilot answers): n participants are drawn with replacement from the
  pilot participants and bring all their ratings of both methods, so the
  within-participant correlation of the pilot is kept. The planned test is either the
  answer-level Mann-Whitney U on their pooled counts, or (`test="wilcoxon"`) the
  participant-level one-sided Wilcoxon signed-rank test on their mean differences.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.io import compact_codes
from study.analysis.mannwhitney import mwu_from_counts
from study.errors import StudyError


def _check_pmf(p, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or len(p) < 2 or (p < 0).any() or not np.isfinite(p).all() or p.sum() <= 0:
        raise StudyError(f"{name}: score distribution must be >= 2 non-negative numbers "
                         f"with a positive sum, got {p.tolist()}")
    return p / p.sum()


def simulate_power_multinomial(n_participants: int, target_pmf, baseline_pmf, *,
                               items_per_method: int, sims: int = 2000, alpha: float = 0.05,
                               seed: int = 0) -> float:
    """Power of the one-sided asymptotic U test when each participant gives
    `items_per_method` independent answers per method drawn from the given pmfs."""
    pt = _check_pmf(target_pmf, "target")
    pb = _check_pmf(baseline_pmf, "baseline")
    if len(pt) != len(pb):
        raise StudyError("target and baseline score distributions have different lengths")
    rng = np.random.default_rng(seed)
    n = int(n_participants) * int(items_per_method)
    cx = rng.multinomial(n, pt, size=sims)
    cy = rng.multinomial(n, pb, size=sims)
    p = mwu_from_counts(cx, cy, "greater")["p"]
    return float(np.mean(np.nan_to_num(p, nan=1.0) < alpha))


def simulate_power_bootstrap(n_participants: int, target_counts, baseline_counts, *,
                             sims: int = 2000, alpha: float = 0.05, seed: int = 0) -> float:
    """Power when n participants are resampled from a pilot.

    `target_counts` and `baseline_counts` are (pilot participants, K) count arrays in the
    same participant order: resampling weights are shared, so each drawn participant
    brings both of their count vectors.
    """
    tx = np.asarray(target_counts, dtype=np.float64)
    ty = np.asarray(baseline_counts, dtype=np.float64)
    if tx.shape != ty.shape or tx.ndim != 2 or len(tx) == 0:
        raise StudyError("pilot count arrays must both be (participants, levels) and non-empty")
    rng = np.random.default_rng(seed)
    P = len(tx)
    w = rng.multinomial(int(n_participants), np.full(P, 1.0 / P), size=sims).astype(np.float64)
    p = mwu_from_counts(w @ tx, w @ ty, "greater")["p"]
    return float(np.mean(np.nan_to_num(p, nan=1.0) < alpha))


def simulate_power_wilcoxon(n_participants: int, differences, *, sims: int = 2000,
                            alpha: float = 0.05, seed: int = 0) -> float:
    """Power of the participant-level test: n per-participant differences (target mean −
    baseline mean) resampled from the pilot, one-sided Wilcoxon signed-rank test with
    the analysis's own method rule (exact for small samples, else asymptotic; zeros
    dropped), vectorised over simulations."""
    from study.analysis.participant_level import wilcoxon_pvalues

    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise StudyError("pilot: need at least 2 participants' differences for the Wilcoxon plan")
    rng = np.random.default_rng(seed)
    sample = d[rng.integers(0, len(d), size=(sims, int(n_participants)))]
    p = wilcoxon_pvalues(sample, "greater")
    return float(np.mean(np.nan_to_num(p, nan=1.0) < alpha))


def required_participants(power_at, *, target_power: float = 0.8, n_min: int = 2,
                          n_max: int = 100_000) -> tuple[int | None, pd.DataFrame]:
    """Smallest n with power_at(n) >= target_power: doubling, then bisection.

    `power_at(n)` should use a fixed seed (common random numbers) so the curve is
    nearly monotone. Returns (n or None if n_max is not enough, table of n and power).
    """
    seen: dict[int, float] = {}

    def f(n: int) -> float:
        if n not in seen:
            seen[n] = power_at(n)
        return seen[n]

    lo, hi = n_min, n_min
    while f(hi) < target_power:
        lo = hi
        if hi >= n_max:
            table = pd.DataFrame(sorted(seen.items()), columns=["participants", "power"])
            return None, table
        hi = min(hi * 2, n_max)
    if hi == n_min:
        table = pd.DataFrame(sorted(seen.items()), columns=["participants", "power"])
        return n_min, table
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if f(mid) >= target_power:
            hi = mid
        else:
            lo = mid
    table = pd.DataFrame(sorted(seen.items()), columns=["participants", "power"])
    return hi, table


def pilot_participant_counts(answers: pd.DataFrame, methods: list[str], scale,
                             dataset: str | None = None) -> tuple[np.ndarray, list[str]]:
    """(participants, methods, K) saliency counts per pilot participant (one data set or all)."""
    sal = answers[answers["kind"] == "saliency"]
    if dataset is not None:
        sal = sal[sal["dataset"].astype(str) == dataset]
    p_idx, p_names = compact_codes(sal["participant_id"])
    meth = sal["method"].astype(str).to_numpy()
    m_idx = np.full(len(sal), -1)
    for i, m in enumerate(methods):
        m_idx[meth == m] = i
    lookup = np.full(max(scale) + 1, -1)
    lookup[np.asarray(scale)] = np.arange(len(scale))
    k_idx = lookup[sal["score"].to_numpy()]
    keep = m_idx >= 0
    P, M, K = len(p_names), len(methods), len(scale)
    flat = (p_idx[keep] * M + m_idx[keep]) * K + k_idx[keep]
    counts = np.bincount(flat, minlength=P * M * K).reshape(P, M, K)
    return counts, p_names


def plan_from_pmfs(pmfs: dict[str, np.ndarray], target: str, baselines: list[str], *,
                   items_per_method: int, target_power: float = 0.8, alpha: float = 0.05,
                   sims: int = 2000, seed: int = 0, n_max: int = 100_000
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Participants needed per baseline, answers independent (multinomial).

    Returns (plan: baseline, participants, power, mode; curve: baseline, participants, power).
    """
    plans, curves = [], []
    for b in baselines:
        def at(n: int, b=b) -> float:
            return simulate_power_multinomial(n, pmfs[target], pmfs[b],
                                              items_per_method=items_per_method, sims=sims,
                                              alpha=alpha, seed=seed)
        n, curve = required_participants(at, target_power=target_power, n_max=n_max)
        plans.append({"baseline": b, "participants": n,
                      "power": None if n is None else at(n), "mode": "multinomial",
                      "test": "mannwhitney", "items_per_method": items_per_method})
        curves.append(curve.assign(baseline=b))
    return pd.DataFrame(plans), pd.concat(curves, ignore_index=True)


def plan_from_pilot(counts: np.ndarray, methods: list[str], target: str, baselines: list[str], *,
                    target_power: float = 0.8, alpha: float = 0.05, sims: int = 2000,
                    seed: int = 0, n_max: int = 100_000, test: str = "mannwhitney",
                    scale=(1, 2, 3, 4, 5)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Participants needed per baseline, resampling whole pilot participants (bootstrap).

    `counts` is (pilot participants, methods, K) as from `pilot_participant_counts`.
    Only pilot participants who rated both methods of a comparison are resampled.
    `test` is the planned test: "mannwhitney" (answer level, pooled counts of the drawn
    participants) or "wilcoxon" (participant level, their mean differences).
    """
    if test not in ("mannwhitney", "wilcoxon"):
        raise StudyError(f"planned test {test!r} is not mannwhitney or wilcoxon")
    values = np.asarray(scale, dtype=np.float64)
    plans, curves = [], []
    t = methods.index(target)
    for b in baselines:
        j = methods.index(b)
        both = (counts[:, t].sum(axis=1) > 0) & (counts[:, j].sum(axis=1) > 0)
        if both.sum() < 2:
            raise StudyError(f"pilot: fewer than 2 participants rated both {target!r} and {b!r}")
        tx, ty = counts[both, t], counts[both, j]
        diffs = (tx @ values) / tx.sum(axis=1) - (ty @ values) / ty.sum(axis=1)

        def at(n: int, tx=tx, ty=ty, diffs=diffs) -> float:
            if test == "wilcoxon":
                return simulate_power_wilcoxon(n, diffs, sims=sims, alpha=alpha, seed=seed)
            return simulate_power_bootstrap(n, tx, ty, sims=sims, alpha=alpha, seed=seed)
        n, curve = required_participants(at, target_power=target_power, n_max=n_max)
        plans.append({"baseline": b, "participants": n,
                      "power": None if n is None else at(n), "mode": "bootstrap",
                      "test": test, "pilot_participants": int(both.sum())})
        curves.append(curve.assign(baseline=b))
    return pd.DataFrame(plans), pd.concat(curves, ignore_index=True)
