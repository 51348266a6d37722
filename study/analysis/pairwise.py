"""Analysis of pairwise choices between methods (question kind `pairwise`).

Each decided answer ("undecided" left out) is a choice between the two methods shown; for
the target method and each baseline the answers of the questions that showed those two
are the target's wins and losses. Declared primary (`clmm`): the share of choices for the
target in a logistic mixed model with participant and item (question) random intercepts,
tested against 1/2 by likelihood ratio (one-sided as declared: signed root), Holm over the
baselines. Secondaries: participant level (each participant's share, Wilcoxon signed-rank
against 1/2), answer level (binomial test of the pooled choices), and with more than two
methods a Bradley-Terry model of every method's worth (study/analysis/bradley_terry.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.corrections import holm

UNDECIDED = "undecided"


def pairwise_frame(answers: pd.DataFrame, kinds: list[str]) -> pd.DataFrame:
    """The pairwise rows as plain columns: participant, item, left, right, choice."""
    rows = answers[answers["kind"].isin(kinds)]
    return pd.DataFrame({"participant": rows["participant_id"].astype(str).to_numpy(),
                         "item": rows["item_id"].astype(str).to_numpy(),
                         "left": rows["left_source"].astype(str).to_numpy(),
                         "right": rows["right_source"].astype(str).to_numpy(),
                         "choice": rows["choice_source"].astype(str).to_numpy()})


def pairwise_methods(frame: pd.DataFrame) -> list[str]:
    return sorted(set(frame["left"]) | set(frame["right"]))


def contrast_choices(frame: pd.DataFrame, target: str, baseline: str) -> pd.DataFrame:
    """Decided answers of the questions showing target and baseline; `success`: target chosen."""
    shown = ((frame["left"] == target) & (frame["right"] == baseline)) | \
            ((frame["left"] == baseline) & (frame["right"] == target))
    sub = frame[shown & (frame["choice"] != UNDECIDED)]
    return sub.assign(success=(sub["choice"] == target).to_numpy())


def one_sided(p_two: float, estimate: float, null: float, alternative: str) -> float:
    """One-sided p from a two-sided one of a symmetric test (signed root of the LR)."""
    if alternative == "two-sided" or not np.isfinite(p_two):
        return p_two
    right_side = estimate > null if alternative == "greater" else estimate < null
    return p_two / 2 if right_side else 1 - p_two / 2


def logistic_mixed_share(success, participant, item, *, alternative: str = "greater",
                         confidence: float = 0.95, seed: int = 0) -> dict:
    """Share of successes in a logistic mixed model, participant and item random intercepts,
    H0: P = 1/2. Swap point for the glmer-equivalent model (issue 28): today it calls
    study.analysis.mixed.glmm_proportion (Laplace, crossed intercepts; LR test, parametric
    bootstrap below 10 levels) and makes its test one-sided as declared."""
    from study.analysis.mixed import glmm_proportion

    r = glmm_proportion(np.asarray(success, dtype=bool), np.asarray(participant), pair=np.asarray(item),
                        confidence=confidence, seed=seed)
    p = one_sided(r["p_value"], r["log_odds"], 0.0, alternative)
    return {**r, "p_value": p, "alternative": alternative}


def pairwise_mixed(frame: pd.DataFrame, target: str, baselines: list[str], *, alternative: str,
                   alpha: float, confidence: float, seed: int = 0) -> pd.DataFrame:
    """Declared primary: one row per target-baseline contrast (tidy), Holm over contrasts."""
    rows = []
    for b in baselines:
        sub = contrast_choices(frame, target, b)
        r = logistic_mixed_share(sub["success"].to_numpy(), sub["participant"].to_numpy(),
                                 sub["item"].to_numpy(), alternative=alternative,
                                 confidence=confidence, seed=seed)
        rows.append({"target": target, "baseline": b, "share": r["proportion_median_participant"],
                     "ci_low": r["ci_low"], "ci_high": r["ci_high"], "log_odds": r["log_odds"],
                     "se": r["se"], "statistic": "LR chi2 (1 df, signed root)" if r["lr_chi2"] == r["lr_chi2"]
                     else "Wald z", "value": r["lr_chi2"] if np.isfinite(r["lr_chi2"]) else r["z"],
                     "p_value": r["p_value"], "p_method": r["p_method"], "alternative": alternative,
                     "n": r["n"], "wins": r["k"], "participants": r["clusters"], "items": r["pairs"],
                     "participant_sd": r["participant_sd"], "item_sd": r["pair_sd"],
                     "converged": r["converged"], "convergence": r["convergence"], "model": r["model"],
                     "ci_level": confidence})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy()) if len(out) else []
    out["reject"] = out["p_holm"] < alpha
    return out


def pairwise_participant(frame: pd.DataFrame, target: str, baselines: list[str], *,
                         alternative: str, alpha: float, confidence: float) -> pd.DataFrame:
    """Participant level: each participant's share of target choices per baseline; mean with
    a t interval, Wilcoxon signed-rank against 1/2 (Holm)."""
    from study.analysis.participant_level import mean_difference_ci, wilcoxon_paired

    rows = []
    for b in baselines:
        sub = contrast_choices(frame, target, b)
        share = sub.groupby("participant", sort=True)["success"].mean().to_numpy(dtype=float)
        ci = mean_difference_ci(share - 0.5, confidence)
        w = wilcoxon_paired(share, np.full(len(share), 0.5), alternative) if len(share) else {}
        rows.append({"target": target, "baseline": b, "participants": int(len(share)),
                     "mean_share": float(share.mean()) if len(share) else np.nan,
                     "ci_low": ci["ci_low"] + 0.5, "ci_high": ci["ci_high"] + 0.5,
                     "statistic": "Wilcoxon W", "value": w.get("W", np.nan),
                     "p_value": w.get("p_value", np.nan), "p_method": w.get("p_method", ""),
                     "rank_biserial": w.get("rank_biserial", np.nan), "alternative": alternative,
                     "ci_level": confidence})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy()) if len(out) else []
    out["reject"] = out["p_holm"] < alpha
    return out


def pairwise_answer(frame: pd.DataFrame, target: str, baselines: list[str], *, alternative: str,
                    alpha: float, confidence: float) -> pd.DataFrame:
    """Answer level: binomial test of the pooled decided choices against 1/2 (Holm)."""
    from study.analysis.consistency import binomial_test

    rows = []
    for b in baselines:
        sub = contrast_choices(frame, target, b)
        r = binomial_test(int(sub["success"].sum()), len(sub), alternative=alternative, confidence=confidence)
        rows.append({"target": target, "baseline": b, "share": r["proportion"], "ci_low": r["ci_low"],
                     "ci_high": r["ci_high"], "statistic": "binomial k", "value": r["k"], "n": r["n"],
                     "p_value": r["p_value"], "alternative": alternative, "ci_method": r["ci_method"],
                     "ci_level": confidence,
                     "cohen_h": 2 * np.arcsin(np.sqrt(r["proportion"])) - 2 * np.arcsin(np.sqrt(0.5))
                     if r["n"] else np.nan})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy()) if len(out) else []
    out["reject"] = out["p_holm"] < alpha
    return out


def pairwise_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per pair of methods shown: wins of each and undecided answers."""
    rows = []
    pair = [tuple(sorted(v)) for v in zip(frame["left"], frame["right"])]
    f = frame.assign(pair=pair)
    for (a, b), sub in f.groupby("pair", sort=True):
        rows.append({"method_a": a, "method_b": b, "wins_a": int((sub["choice"] == a).sum()),
                     "wins_b": int((sub["choice"] == b).sum()),
                     "undecided": int((sub["choice"] == UNDECIDED).sum()), "answers": len(sub)})
    return pd.DataFrame(rows)


def pairwise_bradley_terry(frame: pd.DataFrame, methods: list[str], confidence: float) -> pd.DataFrame:
    """Every method's worth from all decided choices (secondary; more than two methods)."""
    from study.analysis.bradley_terry import bradley_terry

    dec = frame[frame["choice"] != UNDECIDED]
    loser = np.where(dec["choice"] == dec["left"], dec["right"], dec["left"])
    return bradley_terry(dec["choice"].to_numpy(), loser, methods, participant=dec["participant"].to_numpy(),
                         confidence=confidence)

