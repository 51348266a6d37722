"""Sample-size planning for the logistic mixed-model primary (HIVE distinction; pairwise
share) and the interaction CLMM (HIVE agreement), by seeded simulation, with the
conventions of power.py: a `simulate_power_*` function returns the share of simulated
studies whose declared test rejects; `plan_*` searches the smallest number of
participants whose lower Monte Carlo bound reaches the target power
(power.required_participants) and returns (plans, curves) tables, one plan row per
baseline. Each simulated study compares the target with one baseline; a study whose fit
fails or does not converge counts as not significant.

Simulated design (both): a pool of 2 x `items_per_method` items; participant p sees
item i with method (i + p) mod 2 (the Latin-square rotation a balanced study uses), so
every participant sees every item once and each method on half of them; crossed
participant and item random intercepts.

- Logistic: logit P(correct) = logit(1/k) + intercept + log_odds_ratio x 1[target]
  (the baseline is the reference of the simulation; `intercept` is the baseline's log
  odds above chance). Declared test: Wald z of target - baseline
  (logit_mixed.method_contrasts), one-sided unless asked.
- Interaction CLMM: a share `p_correct` of items are right predictions; confidence
  follows the CLMM with thresholds `thresholds`, a baseline gap `gap_baseline` between
  correct and incorrect predictions and a target gap `gap_baseline + interaction`.
  Declared test: the likelihood ratio of the interaction column, signed root
  (ordinal_design.clmm_interaction).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.clmm import _one_blas_thread
from study.analysis.clmm_re import fit_clmm_re, make_term
from study.analysis.logit_mixed import chance_offset, p_value
from study.analysis.power import _plan_row, required_participants
from study.errors import StudyError


def _layout(n_participants: int, items_per_method: int):
    n_items = 2 * int(items_per_method)
    pp, ii = np.meshgrid(np.arange(int(n_participants)), np.arange(n_items), indexing="ij")
    p, i = pp.ravel(), ii.ravel()
    return p, i, ((i + p) % 2 == 0).astype(np.float64)      # 1 = target


def _check(params: dict, keys) -> None:
    for k in keys:
        if k not in params:
            raise StudyError(f"power plan: parameter {k!r} is missing (given: "
                             f"{', '.join(params)})")


# -- logistic mixed model -------------------------------------------------------------

LOGIT_KEYS = ("intercept", "log_odds_ratio", "participant_sd", "item_sd")


def simulate_logit_study(rng: np.random.Generator, n_participants: int, params: dict,
                         items_per_method: int):
    """One simulated study: (y, target indicator, participant, item, offset)."""
    _check(params, LOGIT_KEYS)
    p, i, is_t = _layout(n_participants, items_per_method)
    k = params.get("k")
    off = chance_offset(np.full(len(p), k)) if k else np.zeros(len(p))
    eta = (off + params["intercept"] + params["log_odds_ratio"] * is_t
           + rng.normal(0, params["participant_sd"], int(n_participants))[p]
           + rng.normal(0, params["item_sd"], 2 * int(items_per_method))[i])
    y = (rng.random(len(p)) < 1 / (1 + np.exp(-eta))).astype(np.int64)
    return y, is_t, p, i, off


def logit_p_value(y, is_target, participant, item, offset, *,
                  alternative: str = "greater") -> float:
    """p-value of the declared test (Wald z of target - baseline) on one study."""
    if (y == y[0]).all():
        raise StudyError("every answer is the same")
    X = np.column_stack([np.ones(len(y)), is_target])
    terms = [make_term("participant", participant), make_term("item", item)]
    fit = fit_clmm_re(y, X, terms, n_categories=2, theta_fixed=np.zeros(1), offset=offset)
    if not fit.convergence["converged"]:
        raise StudyError("did not converge")
    est, se = fit.contrast(np.array([0.0, 1.0]))
    return float(p_value(est / se, alternative)) if se > 0 else 1.0


def simulate_power_logit_mixed(n_participants: int, params: dict, *, items_per_method: int,
                               sims: int = 200, alpha: float = 0.05, seed: int = 0,
                               alternative: str = "greater") -> float:
    """Power of the logistic mixed-model primary for one baseline (see the module
    docstring): share of `sims` simulated studies with p < alpha."""
    rng = np.random.default_rng(seed)
    hits = 0
    with _one_blas_thread():
        for _ in range(sims):
            study = simulate_logit_study(rng, n_participants, params, items_per_method)
            try:
                hits += logit_p_value(*study, alternative=alternative) < alpha
            except StudyError:
                continue
    return hits / sims


def plan_logit_mixed(params_by_baseline: dict[str, dict], *, items_per_method: int,
                     target_power: float = 0.8, alpha: float = 0.05, sims: int = 200,
                     seed: int = 0, n_min: int = 4, n_max: int = 400,
                     alternative: str = "greater") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Participants needed per baseline for the logistic mixed-model primary. With
    several baselines, pass alpha / number of baselines for a Bonferroni-safe plan of
    the Holm-corrected analysis."""
    def power(n, params):
        return simulate_power_logit_mixed(n, params, items_per_method=items_per_method,
                                          sims=sims, alpha=alpha, seed=seed,
                                          alternative=alternative)
    return _plan(params_by_baseline, power, "logit_mixed", items_per_method, target_power,
                 sims, n_min, n_max, LOGIT_KEYS + ("k",))


# -- interaction CLMM -----------------------------------------------------------------

CLMM_KEYS = ("thresholds", "gap_baseline", "interaction", "participant_sd", "item_sd")


def simulate_agreement_study(rng: np.random.Generator, n_participants: int, params: dict,
                             items_per_method: int):
    """One simulated agreement study: (y 0..K-1, X = [correct, target, correct x target],
    participant, item)."""
    _check(params, CLMM_KEYS)
    p, i, is_t = _layout(n_participants, items_per_method)
    n_items = 2 * int(items_per_method)
    share = float(params.get("p_correct", 0.5))
    correct = (np.arange(n_items) < round(share * n_items)).astype(np.float64)
    rng.shuffle(correct)
    c = correct[i]
    gap = params["gap_baseline"] + params["interaction"] * is_t
    eta = (params.get("method_effect", 0.0) * is_t + gap * c
           + rng.normal(0, params["participant_sd"], int(n_participants))[p]
           + rng.normal(0, params["item_sd"], n_items)[i])
    theta = np.asarray(params["thresholds"], dtype=np.float64)
    cum = 1 / (1 + np.exp(-(theta[None, :] - eta[:, None])))
    y = (rng.random(len(p))[:, None] > cum).sum(axis=1)
    return y, np.column_stack([c, is_t, c * is_t]), p, i


def interaction_p_value(y, X, participant, item, *, alternative: str = "greater") -> float:
    """p-value of the declared test (signed root of the likelihood ratio of the
    interaction column) on one study; categories nobody used are dropped."""
    used, y = np.unique(y, return_inverse=True)
    if len(used) < 2:
        raise StudyError("every answer is the same")
    terms = [make_term("participant", participant), make_term("item", item)]
    K = len(used)
    full = fit_clmm_re(y, X, terms, n_categories=K)
    if not full.convergence["converged"]:
        raise StudyError("did not converge")
    start = np.delete(np.asarray(full.nat), K - 1 + 2)
    red = fit_clmm_re(y, X[:, :2], terms, n_categories=K, start=start, hessian=False)
    if red.singular and not full.singular:    # see ordinal_design._reduced
        cold = fit_clmm_re(y, X[:, :2], terms, n_categories=K, hessian=False)
        red = cold if cold.loglik > red.loglik else red
    lr = max(0.0, 2 * (full.loglik - red.loglik))
    return float(p_value(np.sign(full.beta[2]) * np.sqrt(lr), alternative))


def simulate_power_clmm_interaction(n_participants: int, params: dict, *,
                                    items_per_method: int, sims: int = 100,
                                    alpha: float = 0.05, seed: int = 0,
                                    alternative: str = "greater") -> float:
    """Power of the agreement primary's interaction test for one baseline."""
    rng = np.random.default_rng(seed)
    hits = 0
    with _one_blas_thread():
        for _ in range(sims):
            study = simulate_agreement_study(rng, n_participants, params, items_per_method)
            try:
                hits += interaction_p_value(*study, alternative=alternative) < alpha
            except StudyError:
                continue
    return hits / sims


def plan_clmm_interaction(params_by_baseline: dict[str, dict], *, items_per_method: int,
                          target_power: float = 0.8, alpha: float = 0.05, sims: int = 100,
                          seed: int = 0, n_min: int = 4, n_max: int = 400,
                          alternative: str = "greater") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Participants needed per baseline for the agreement primary's interaction test."""
    def power(n, params):
        return simulate_power_clmm_interaction(n, params, items_per_method=items_per_method,
                                               sims=sims, alpha=alpha, seed=seed,
                                               alternative=alternative)
    return _plan(params_by_baseline, power, "clmm_interaction", items_per_method,
                 target_power, sims, n_min, n_max,
                 ("gap_baseline", "interaction", "participant_sd", "item_sd", "p_correct"))


def _plan(params_by_baseline, power, test, items_per_method, target_power, sims, n_min,
          n_max, report_keys) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not params_by_baseline:
        raise StudyError("power plan: no baseline to plan for")
    plans, curves = [], []
    for b, params in params_by_baseline.items():
        cache: dict[int, float] = {}

        def at(n: int, params=params, cache=cache) -> float:
            if n not in cache:
                cache[n] = power(n, params)
            return cache[n]
        n, curve = required_participants(at, target_power=target_power, n_min=n_min,
                                         n_max=n_max, sims=sims)
        plans.append({"baseline": b, "participants": n, **_plan_row(at, n, sims),
                      "test": test, "items_per_method": items_per_method,
                      **{k: params.get(k) for k in report_keys}})
        curves.append(curve.assign(baseline=b))
    return pd.DataFrame(plans), pd.concat(curves, ignore_index=True)

