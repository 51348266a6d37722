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
from scipy import stats

from study.analysis.io import RATING_KINDS, compact_codes, score_index
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


def monte_carlo_interval(power: float, sims: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """(Monte Carlo standard error, Wilson interval low, high) of a simulated power."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    se = float(np.sqrt(max(power * (1 - power), 0.0) / sims))
    denom = 1 + z * z / sims
    centre = (power + z * z / (2 * sims)) / denom
    half = z * np.sqrt(power * (1 - power) / sims + z * z / (4 * sims * sims)) / denom
    return se, float(max(0.0, centre - half)), float(min(1.0, centre + half))


def required_participants(power_at, *, target_power: float = 0.8, n_min: int = 2,
                          n_max: int = 100_000, sims: int | None = None,
                          confidence: float = 0.95) -> tuple[int | None, pd.DataFrame]:
    """Smallest n with power_at(n) >= target_power: doubling, then bisection.

    With `sims` (the simulations behind each power value) the criterion is the lower
    end of the Wilson interval of the Monte Carlo estimate instead of the estimate, so
    the noise of a finite simulation does not pick an n that is a few participants
    short. `power_at(n)` should use a fixed seed (common random numbers) so the curve
    is nearly monotone. Returns (n or None if n_max is not enough, table of n, power
    and, with `sims`, its Monte Carlo SE and interval).
    """
    seen: dict[int, float] = {}

    def f(n: int) -> float:
        if n not in seen:
            seen[n] = power_at(n)
        if sims is None:
            return seen[n]
        return monte_carlo_interval(seen[n], sims, confidence)[1]

    lo, hi = n_min, n_min
    while f(hi) < target_power:
        lo = hi
        if hi >= n_max:
            return None, _curve_table(seen, sims, confidence)
        hi = min(hi * 2, n_max)
    if hi == n_min:
        return n_min, _curve_table(seen, sims, confidence)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if f(mid) >= target_power:
            hi = mid
        else:
            lo = mid
    return hi, _curve_table(seen, sims, confidence)


def _curve_table(seen: dict[int, float], sims: int | None, confidence: float) -> pd.DataFrame:
    table = pd.DataFrame(sorted(seen.items()), columns=["participants", "power"])
    if sims is not None:
        mc = [monte_carlo_interval(p, sims, confidence) for p in table["power"]]
        table["mc_se"] = [m[0] for m in mc]
        table["power_ci_low"] = [m[1] for m in mc]
        table["power_ci_high"] = [m[2] for m in mc]
    return table


def _plan_row(at, n, sims, confidence=0.95) -> dict:
    if n is None:
        return {"power": None, "mc_se": None, "power_ci_low": None, "power_ci_high": None}
    p = at(n)
    se, lo, hi = monte_carlo_interval(p, sims, confidence)
    return {"power": p, "mc_se": se, "power_ci_low": lo, "power_ci_high": hi}


def pilot_participant_counts(answers: pd.DataFrame, methods: list[str], scale,
                             dataset: str | None = None) -> tuple[np.ndarray, list[str]]:
    """(participants, methods, K) saliency counts per pilot participant (one data set or all)."""
    sal = answers[answers["kind"].isin(RATING_KINDS)]
    if dataset is not None:
        sal = sal[sal["dataset"].astype(str) == dataset]
    p_idx, p_names = compact_codes(sal["participant_id"])
    meth = sal["method"].astype(str).to_numpy()
    m_idx = np.full(len(sal), -1)
    for i, m in enumerate(methods):
        m_idx[meth == m] = i
    k_idx = score_index(sal["score"].to_numpy(), scale)
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
        n, curve = required_participants(at, target_power=target_power, n_max=n_max, sims=sims)
        plans.append({"baseline": b, "participants": n, **_plan_row(at, n, sims),
                      "mode": "multinomial", "test": "mannwhitney",
                      "items_per_method": items_per_method})
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
        n, curve = required_participants(at, target_power=target_power, n_max=n_max, sims=sims)
        plans.append({"baseline": b, "participants": n, **_plan_row(at, n, sims),
                      "mode": "bootstrap", "test": test, "pilot_participants": int(both.sum())})
        curves.append(curve.assign(baseline=b))
    return pd.DataFrame(plans), pd.concat(curves, ignore_index=True)


# ---------------------------------------------------------------------------
# the primary analysis by simulation: the cumulative link mixed model
# ---------------------------------------------------------------------------

def clmm_parameters_from_pmf(baseline_pmf, target_pmf=None, *, log_odds_ratio: float | None = None,
                             participant_sd: float = 0.8, item_sd: float = 0.5,
                             slope_sd: float = 0.0) -> dict:
    """Simulation parameters from assumed score distributions: thresholds from the
    baseline's cumulative distribution, the log odds ratio from a proportional-odds fit
    to the two distributions (unless given)."""
    from study.analysis.clmm import fit_clmm

    pb = _check_pmf(baseline_pmf, "baseline")
    cum = np.clip(np.cumsum(pb)[:-1], 1e-6, 1 - 1e-6)
    theta = np.log(cum / (1 - cum))
    if log_odds_ratio is None:
        if target_pmf is None:
            raise StudyError("CLMM plan: give the target's score distribution or a log odds ratio")
        pt = _check_pmf(target_pmf, "target")
        big = 20_000
        ct, cb = np.round(pt * big).astype(int), np.round(pb * big).astype(int)
        y = np.concatenate([np.repeat(np.arange(len(pt)), ct), np.repeat(np.arange(len(pb)), cb)])
        x = np.concatenate([np.zeros(ct.sum()), np.ones(cb.sum())])   # target = reference
        present = np.unique(y)
        if len(present) < len(pt):
            raise StudyError("CLMM plan: every score needs a positive probability")
        fit = fit_clmm(y, x[:, None], n_categories=len(pt))
        log_odds_ratio = -float(fit.beta[0])
    return {"thresholds": theta.tolist(), "log_odds_ratio": float(log_odds_ratio),
            "participant_sd": float(participant_sd), "item_sd": float(item_sd),
            "slope_sd": float(slope_sd)}


def simulate_clmm_study(rng: np.random.Generator, n_participants: int, params: dict,
                        items_per_method: int):
    """One simulated study: every participant rates the same `items_per_method` items of
    the target and of the baseline; participant intercepts and (params["slope_sd"] > 0)
    participant-varying method effects, crossed with item intercepts."""
    theta = np.asarray(params["thresholds"])
    n_i = 2 * items_per_method
    b_p = rng.normal(0, params["participant_sd"], n_participants)
    b_s = rng.normal(0, params.get("slope_sd", 0.0), n_participants)
    b_i = rng.normal(0, params["item_sd"], n_i)
    is_base = np.arange(n_i) >= items_per_method
    p, i = np.meshgrid(np.arange(n_participants), np.arange(n_i), indexing="ij")
    p, i = p.ravel(), i.ravel()
    eta = (-params["log_odds_ratio"] + b_s[p]) * is_base[i] + b_p[p] + b_i[i]
    cum = 1.0 / (1.0 + np.exp(-(theta[None, :] - eta[:, None])))
    y = (rng.random(len(p))[:, None] > cum).sum(axis=1)
    return y, is_base[i].astype(np.float64)[:, None], p, i


def primary_clmm_p_value(y: np.ndarray, X: np.ndarray, participant, item, *, K: int,
                         alternative: str = "greater") -> tuple[float, str]:
    """p-value of the declared saliency primary on one two-method study (target =
    reference, X = baseline indicator): the declared random-effects structure with its
    fallback (mixed.fit_with_fallback), likelihood-ratio test of target − baseline.
    Returns (p, structure used)."""
    from study.analysis.mixed import fit_with_fallback, reduced_fit

    used_k = np.unique(y)
    d = {"y": np.searchsorted(used_k, y), "X": X, "names": ["method[baseline]"],
         "categories": [str(k) for k in used_k], "participant": np.asarray(participant),
         "item": np.asarray(item), "method": np.where(X[:, 0] > 0, "baseline", "target"),
         "datasets": ["d"], "n_method_columns": 1}
    fit, used, _att, _why = fit_with_fallback(d, ["target", "baseline"])
    red = reduced_fit(d, used, fit, [0])
    est = -float(fit.beta[0])
    signed = np.sign(est) * np.sqrt(max(0.0, 2 * (fit.loglik - red.loglik)))
    p = {"greater": stats.norm.sf(signed), "less": stats.norm.cdf(signed),
         "two-sided": 2 * stats.norm.sf(abs(signed))}[alternative]
    del K
    return float(p), used


def simulate_power_clmm(n_participants: int, params: dict, *, items_per_method: int,
                        sims: int = 200, alpha: float = 0.05, seed: int = 0,
                        alternative: str = "greater") -> float:
    """Power of the declared primary (maximal CLMM with its fallback, likelihood-ratio
    test of target − baseline), by fitting it to `sims` simulated studies (a study whose
    fit fails or does not converge counts as not significant)."""
    rng = np.random.default_rng(seed)
    K = len(params["thresholds"]) + 1
    hits = 0
    for _ in range(sims):
        y, X, p, i = simulate_clmm_study(rng, int(n_participants), params, items_per_method)
        if len(np.unique(y)) < 2:
            continue
        try:
            pv, _used = primary_clmm_p_value(y, X, p, i, K=K, alternative=alternative)
        except StudyError:
            continue
        hits += pv < alpha
    return hits / sims


def plan_clmm(params_by_baseline: dict[str, dict], *, items_per_method: int,
              target_power: float = 0.8, alpha: float = 0.05, sims: int = 200, seed: int = 0,
              n_min: int = 4, n_max: int = 400, alternative: str = "greater",
              mode: str = "assumed") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Participants needed per baseline for the CLMM primary test (lower Monte Carlo
    bound reaching `target_power`)."""
    plans, curves = [], []
    for b, params in params_by_baseline.items():
        cache: dict[int, float] = {}

        def at(n: int, params=params, cache=cache) -> float:
            if n not in cache:
                cache[n] = simulate_power_clmm(n, params, items_per_method=items_per_method,
                                               sims=sims, alpha=alpha, seed=seed,
                                               alternative=alternative)
            return cache[n]
        n, curve = required_participants(at, target_power=target_power, n_min=n_min,
                                         n_max=n_max, sims=sims)
        plans.append({"baseline": b, "participants": n, **_plan_row(at, n, sims), "mode": mode,
                      "test": "clmm", "items_per_method": items_per_method,
                      "log_odds_ratio": params["log_odds_ratio"],
                      "participant_sd": params["participant_sd"], "item_sd": params["item_sd"],
                      "slope_sd": params.get("slope_sd", 0.0)})
        curves.append(curve.assign(baseline=b))
    return pd.DataFrame(plans), pd.concat(curves, ignore_index=True)


def simulate_power_pairwise(n_participants: int, log_odds: float, *, choices_per_participant: int,
                            participant_sd: float = 0.8, item_sd: float = 0.5, n_items: int | None = None,
                            sims: int = 2000, alpha: float = 0.05, seed: int = 0) -> float:
    """Power of a pairwise study for one target-baseline contrast: each participant makes
    `choices_per_participant` decided choices, logit P(target) = log_odds + b_participant +
    b_item (normal random intercepts); tested, vectorised over simulations, with the
    participant-level one-sided Wilcoxon test of participant shares against 1/2 (the
    declared participant-level analysis). That test ignores the item variance: with
    item_sd > 0 its type-I error is above alpha (about 0.1 at item_sd 0.5, 30 participants,
    8 choices), so this plan is optimistic for the mixed-model primary; a plan by simulating
    the mixed model itself is left to the glmer-equivalent (issue 28)."""
    from study.analysis.participant_level import wilcoxon_pvalues

    if n_participants < 2 or choices_per_participant < 1:
        raise StudyError("pairwise power: needs at least 2 participants and 1 choice each")
    rng = np.random.default_rng(seed)
    m = int(choices_per_participant)
    items = int(n_items or max(m, 2 * m))
    b_p = rng.normal(0.0, participant_sd, (sims, int(n_participants), 1))
    b_i = rng.normal(0.0, item_sd, (sims, 1, items))
    which = rng.integers(0, items, (sims, int(n_participants), m))
    eta = log_odds + b_p + np.take_along_axis(np.broadcast_to(b_i, (sims, int(n_participants), items)), which, 2)
    share = (rng.random(eta.shape) < 1 / (1 + np.exp(-eta))).mean(axis=2)
    p = wilcoxon_pvalues(share - 0.5, "greater")
    return float(np.mean(np.nan_to_num(p, nan=1.0) < alpha))
