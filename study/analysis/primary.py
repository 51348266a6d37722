"""The declared primary result, one row per test, in one shape for every analysis.

Why one table: the CLI prints it first, the report puts it on top, the summary JSON
marks it, whichever analysis the researcher declared (`analysis.primary`: clmm,
participant or answer). Every other test of the report is secondary.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.consistency import POOLED_VERSION
from study.analysis.plan import PRIMARY_LABELS

COLUMNS = ["study", "analysis", "unit", "comparison", "effect", "estimate", "ci_low", "ci_high",
           "ci_method", "statistic", "value", "p_value", "p_holm", "reject", "alternative", "n",
           "model", "n_participants", "n_items", "n_answers", "converged", "fit"]
# `model` (R syntax), the n_* counts, `converged` and `fit` (convergence line; for the
# CLMM "fitted: <formula>; fallback because ...") are there so that a one-sentence
# result can be built from a row without reading the model tables.


def _saliency_rows(res) -> list[dict]:
    opt = res.options
    rows = []
    if opt.primary == "clmm" and res.clmm is not None:
        conv = res.clmm["convergence"].iloc[0]
        counts = res.clmm.get("n", {})
        n = f"{conv['answers']} answers, {conv.get('levels_participant', '?')} participants, " \
            f"{conv.get('levels_item', '?')} items"
        st = res.clmm["structure"].iloc[0] if "structure" in res.clmm else None
        for r in res.clmm["contrasts"].itertuples():
            profile = "or_profile_ci_low" in res.clmm["contrasts"] and \
                bool(np.isfinite(r.or_profile_ci_low))
            rows.append({"comparison": f"{r.target} vs {r.baseline}",
                         "unit": "answer in participant × item (mixed model)",
                         "effect": "odds ratio of a higher rating", "estimate": r.odds_ratio,
                         "ci_low": r.or_profile_ci_low if profile else r.or_ci_low,
                         "ci_high": r.or_profile_ci_high if profile else r.or_ci_high,
                         "ci_method": "profile likelihood" if profile else "Wald",
                         "statistic": "LR chi2 (1 df, signed root)" if "lr_chi2" in
                         res.clmm["contrasts"] else "z",
                         "value": getattr(r, "lr_chi2", r.z), "p_value": r.p_value,
                         "p_holm": r.p_holm, "reject": bool(r.reject),
                         "alternative": r.alternative, "n": n,
                         "model": st["fitted"] if st is not None else "",
                         "n_participants": counts.get("participants"),
                         "n_items": counts.get("items"), "n_answers": counts.get("answers"),
                         "converged": bool(conv["converged"]),
                         "fit": st["line"] if st is not None else conv["summary"]})
    elif opt.primary == "participant" and res.participant is not None:
        wil = res.participant["wilcoxon"]
        for r in wil[wil["family"] == "pooled"].itertuples():
            rows.append({"comparison": f"{r.target} vs {r.baseline}", "unit": "participant",
                         "effect": "mean difference of participant mean ratings",
                         "estimate": r.mean_difference, "ci_low": r.ci_low, "ci_high": r.ci_high,
                         "statistic": "Wilcoxon W", "value": r.W, "p_value": r.p_value,
                         "p_holm": r.p_holm, "reject": bool(r.reject),
                         "alternative": r.alternative, "n": f"{r.n_pairs} participants"})
    elif opt.primary == "answer" and res.mann_whitney is not None:
        mw = res.mann_whitney
        for r in mw[mw["family"] == "pooled"].itertuples():
            rows.append({"comparison": f"{r.target} vs {r.baseline}", "unit": "answer",
                         "effect": "rank-biserial correlation", "estimate": r.rank_biserial,
                         "ci_low": r.rank_biserial_ci_low, "ci_high": r.rank_biserial_ci_high,
                         "statistic": "Mann-Whitney z", "value": r.z, "p_value": r.p_value,
                         "p_holm": r.p_holm, "reject": bool(r.reject),
                         "alternative": r.alternative, "n": f"{r.n_x} + {r.n_y} answers"})
    return [{"study": "saliency", **r} for r in rows]


def _consistency_rows(res) -> list[dict]:
    opt = res.options
    alpha = opt.alpha
    comp = "data-dependent vs Euclidean pairs, all versions"
    row = None
    if opt.primary == "clmm" and res.consistency_mixed is not None:
        r = res.consistency_mixed[res.consistency_mixed["version"] == POOLED_VERSION].iloc[0]
        crossed = bool(r.get("pairs", 0))
        row = {"unit": "answer in participant × pair (mixed model)" if crossed else
               "answer in participant (mixed model)",
               "effect": "P(data-dependent) of the median participant and pair",
               "estimate": r["proportion_median_participant"], "ci_low": r["ci_low"],
               "ci_high": r["ci_high"], "ci_method": "Wald",
               "statistic": "LR chi2 (1 df)" if crossed else "z",
               "value": r["lr_chi2"] if crossed else r["z"], "p_value": r["p_value"],
               "n": f"{r['n']} decided answers, {r['clusters']} participants"
                    + (f", {r['pairs']} pairs" if crossed else ""),
               "model": r.get("model", ""), "n_participants": r["clusters"],
               "n_items": r.get("pairs"), "n_answers": r["n"],
               "converged": bool(r["converged"]),
               "fit": f"{r.get('p_method', '')}; {r['convergence']}"}
    elif opt.primary == "participant" and res.consistency_participant is not None:
        t = res.consistency_participant
        r = t[t["version"] == POOLED_VERSION].iloc[0]
        row = {"unit": "participant", "effect": "mean of participant proportions data-dependent",
               "estimate": r["mean_proportion"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
               "statistic": "Wilcoxon W", "value": r["W"], "p_value": r["p_value"],
               "n": f"{r['participants']} participants"}
    elif opt.primary == "answer" and res.consistency_tests is not None:
        t = res.consistency_tests
        r = t[t["version"] == POOLED_VERSION].iloc[0]
        row = {"unit": "answer", "effect": "proportion data-dependent",
               "estimate": r["proportion"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
               "statistic": "binomial k", "value": r["k"], "p_value": r["p_value"],
               "n": f"{r['n']} decided answers"}
    if row is None:
        return []
    p = row["p_value"]
    return [{"study": "consistency", "comparison": comp, **row, "p_holm": p,
             "reject": bool(np.isfinite(p) and p < alpha), "alternative": "two-sided"}]


def primary_table(res) -> pd.DataFrame:
    """Rows of the declared primary analysis (saliency contrasts, consistency pooled test)."""
    rows = _saliency_rows(res) + _consistency_rows(res)
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "analysis"])
    out.insert(1, "analysis", res.options.primary)
    return out[COLUMNS]


def primary_description(primary: str, *, saliency: bool = True, consistency: bool = True) -> str:
    """The declared primary analysis in words, naming only the studies the file holds."""
    text = PRIMARY_LABELS[primary]
    sal, _sep, con = text.partition("; ")
    if primary == "clmm":
        sal, _sep, con = text.partition("; logistic")
        con = "logistic" + con
    parts = [p for p, keep in ((sal, saliency), (con, consistency)) if keep and p]
    return "; ".join(parts) if parts else text
