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
           "statistic", "value", "p_value", "p_holm", "reject", "alternative", "n"]


def _saliency_rows(res) -> list[dict]:
    opt = res.options
    rows = []
    if opt.primary == "clmm" and res.clmm is not None:
        conv = res.clmm["convergence"].iloc[0]
        n = f"{conv['answers']} answers, {conv.get('levels_participant', '?')} participants, " \
            f"{conv.get('levels_item', '?')} items"
        for r in res.clmm["contrasts"].itertuples():
            rows.append({"comparison": f"{r.target} vs {r.baseline}",
                         "unit": "answer in participant × item (mixed model)",
                         "effect": "odds ratio of a higher rating", "estimate": r.odds_ratio,
                         "ci_low": r.or_ci_low, "ci_high": r.or_ci_high, "statistic": "z",
                         "value": r.z, "p_value": r.p_value, "p_holm": r.p_holm,
                         "reject": bool(r.reject), "alternative": r.alternative, "n": n})
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
        row = {"unit": "answer in participant (mixed model)",
               "effect": "P(data-dependent) of the median participant",
               "estimate": r["proportion_median_participant"], "ci_low": r["ci_low"],
               "ci_high": r["ci_high"], "statistic": "z", "value": r["z"],
               "p_value": r["p_value"],
               "n": f"{r['n']} decided answers, {r['clusters']} participants"}
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


def primary_description(primary: str) -> str:
    return PRIMARY_LABELS[primary]
