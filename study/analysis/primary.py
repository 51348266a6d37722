"""The declared primary result, one row per test, in one shape for every analysis.

Why one table: the CLI prints it first, the report puts it on top, the summary JSON
marks it, whichever analysis the researcher declared (`analysis.primary`: clmm,
participant or answer). Every other test of the report is secondary.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.consistency import POOLED_VERSION
from study.analysis.plan import PRIMARIES

COLUMNS = ["study", "analysis", "unit", "comparison", "effect", "estimate", "ci_low", "ci_high",
           "ci_method", "statistic", "value", "p_value", "p_holm", "reject", "alternative", "n",
           "model", "n_participants", "n_items", "n_answers", "converged", "fit"]
# `model` (R syntax), the n_* counts, `converged` and `fit` (convergence line; for the
# CLMM "fitted: <formula>; fallback because ...") are there so that a one-sentence
# result can be built from a row without reading the model tables.


def rating_rows(res) -> list[dict]:
    """Rows of a rating kind (saliency, likert): one per target-baseline contrast."""
    build = PRIMARIES[res.options.primary].pick(clmm=_rating_clmm, participant=_rating_participant,
                                                answer=_rating_answer)
    return [{"study": res.rating_kind, **r} for r in build(res)]


def _rating_clmm(res) -> list[dict]:
    rows: list[dict] = []
    if res.clmm is not None:
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
    return rows


def _rating_participant(res) -> list[dict]:
    rows: list[dict] = []
    if res.participant is not None:
        wil = res.participant["wilcoxon"]
        for r in wil[wil["family"] == "pooled"].itertuples():
            rows.append({"comparison": f"{r.target} vs {r.baseline}", "unit": "participant",
                         "effect": "mean difference of participant mean ratings",
                         "estimate": r.mean_difference, "ci_low": r.ci_low, "ci_high": r.ci_high,
                         "statistic": "Wilcoxon W", "value": r.W, "p_value": r.p_value,
                         "p_holm": r.p_holm, "reject": bool(r.reject),
                         "alternative": r.alternative, "n": f"{r.n_pairs} participants"})
    return rows


def _rating_answer(res) -> list[dict]:
    rows: list[dict] = []
    if res.mann_whitney is not None:
        mw = res.mann_whitney
        for r in mw[mw["family"] == "pooled"].itertuples():
            rows.append({"comparison": f"{r.target} vs {r.baseline}", "unit": "answer",
                         "effect": "rank-biserial correlation", "estimate": r.rank_biserial,
                         "ci_low": r.rank_biserial_ci_low, "ci_high": r.rank_biserial_ci_high,
                         "statistic": "Mann-Whitney z", "value": r.z, "p_value": r.p_value,
                         "p_holm": r.p_holm, "reject": bool(r.reject),
                         "alternative": r.alternative, "n": f"{r.n_x} + {r.n_y} answers"})
    return rows


MULTI_OR = "odds ratio of choosing the source over the reference (median participant and pair)"
MULTI_WIN = "mean participant win rate of the source"
MULTI_PROP = "proportion choosing the earlier source of the comparison"


def _multi_rows(res) -> list[dict]:
    """More than two pair sources: the omnibus test of "no source preferred" first, then
    one row per source (mixed model: odds ratio against the reference, Wald, Holm;
    participant level: mean win rate; answer level: each comparison's binomial test)."""
    opt, m = res.options, res.consistency_multi
    names = ", ".join(m["sources"])
    omnibus = f"no source preferred among {names}"
    rows = PRIMARIES[opt.primary].pick(clmm=_multi_clmm, participant=_multi_participant,
                                       answer=_multi_answer)(m, omnibus)
    alpha = opt.alpha
    return [{"study": "consistency", **r, "alternative": "two-sided",
             "reject": bool(np.isfinite(r["p_holm"]) and r["p_holm"] < alpha)} for r in rows]


def _multi_clmm(m, omnibus: str) -> list[dict]:
    from study.analysis.multisource import MULTI_EFFECT

    rows: list[dict] = []
    if "model" in m:
        r = m["model"].iloc[0]
        common = {"unit": "answer in participant × pair (mixed model)",
                  "n": f"{r['n']} decided answers, {r['participants']} participants, "
                       f"{r['pairs']} pairs", "model": r["model"],
                  "n_participants": r["participants"], "n_items": r["pairs"], "n_answers": r["n"],
                  "converged": bool(r["converged"]), "fit": f"{r['p_method']}; {r['convergence']}"}
        rows.append({**common, "comparison": omnibus, "effect": MULTI_EFFECT, "estimate": np.nan,
                     "ci_low": np.nan, "ci_high": np.nan, "ci_method": "",
                     "statistic": f"LR chi2 ({r['df']} df)", "value": r["lr_chi2"],
                     "p_value": r["p_value"], "p_holm": r["p_value"]})
        for q in m["preferences"][~m["preferences"]["is_reference"]].itertuples():
            rows.append({**common, "comparison": f"{q.source} vs {q.reference}", "effect": MULTI_OR,
                         "estimate": q.odds_ratio, "ci_low": q.or_ci_low, "ci_high": q.or_ci_high,
                         "ci_method": "Wald", "statistic": "Wald z",
                         "value": q.log_odds / q.se if q.se > 0 else np.nan,
                         "p_value": q.p_wald, "p_holm": q.p_holm})
    return rows


def _multi_participant(m, omnibus: str) -> list[dict]:
    from study.analysis.multisource import MULTI_EFFECT

    rows: list[dict] = []
    f = m["participant"]["friedman"].iloc[0]
    n = f"{f['participants']} participants who saw every source"
    rows.append({"unit": "participant", "comparison": omnibus, "effect": MULTI_EFFECT,
                 "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                 "statistic": f"Friedman chi2 ({f['df']} df)", "value": f["chi2"],
                 "p_value": f["p_value"], "p_holm": f["p_value"], "n": n})
    for w in m["participant"]["win_rates"].itertuples():
        rows.append({"unit": "participant", "comparison": str(w.source), "effect": MULTI_WIN,
                     "estimate": w.mean_win_rate, "ci_low": w.ci_low, "ci_high": w.ci_high,
                     "ci_method": "t", "statistic": "", "value": np.nan, "p_value": np.nan,
                     "p_holm": np.nan, "n": f"{w.participants} participants"})
    return rows


def _multi_answer(m, omnibus: str) -> list[dict]:
    from study.analysis.multisource import MULTI_EFFECT

    rows: list[dict] = []
    o = m["answer"]["overall"].iloc[0]
    rows.append({"unit": "answer", "comparison": omnibus, "effect": MULTI_EFFECT,
                 "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                 "statistic": f"Pearson chi2 ({o['df']} df)", "value": o["chi2"],
                 "p_value": o["p_value"], "p_holm": o["p_value"],
                 "n": f"{o['n']} decided answers"})
    for c in m["answer"]["comparisons"].itertuples():
        rows.append({"unit": "answer", "comparison": str(c.comparison), "effect": MULTI_PROP,
                     "estimate": c.proportion, "ci_low": c.ci_low, "ci_high": c.ci_high,
                     "ci_method": "Clopper-Pearson", "statistic": "binomial k", "value": c.k,
                     "p_value": c.p_value, "p_holm": c.p_holm, "n": f"{c.n} decided answers"})
    return rows


def _consistency_rows(res) -> list[dict]:
    opt = res.options
    alpha = opt.alpha
    if getattr(res, "consistency_multi", None) is not None:
        return _multi_rows(res)
    comp = "data-dependent vs Euclidean pairs, all versions"
    row = PRIMARIES[opt.primary].pick(clmm=_consistency_clmm, participant=_consistency_participant,
                                      answer=_consistency_answer)(res)
    if row is None:
        return []
    p = row["p_value"]
    return [{"study": "consistency", "comparison": comp, **row, "p_holm": p,
             "reject": bool(np.isfinite(p) and p < alpha), "alternative": "two-sided"}]


def _consistency_clmm(res) -> dict | None:
    row = None
    if res.consistency_mixed is not None:
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
    return row


def _consistency_participant(res) -> dict | None:
    row = None
    if res.consistency_participant is not None:
        t = res.consistency_participant
        r = t[t["version"] == POOLED_VERSION].iloc[0]
        row = {"unit": "participant", "effect": "mean of participant proportions data-dependent",
               "estimate": r["mean_proportion"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
               "statistic": "Wilcoxon W", "value": r["W"], "p_value": r["p_value"],
               "n": f"{r['participants']} participants"}
    return row


def _consistency_answer(res) -> dict | None:
    row = None
    if res.consistency_tests is not None:
        t = res.consistency_tests
        r = t[t["version"] == POOLED_VERSION].iloc[0]
        row = {"unit": "answer", "effect": "proportion data-dependent",
               "estimate": r["proportion"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
               "statistic": "binomial k", "value": r["k"], "p_value": r["p_value"],
               "n": f"{r['n']} decided answers"}
    return row


def primary_table(res, analyses=None) -> pd.DataFrame:
    """Rows of the declared primary analysis of every analysed kind (`analyses`: the kinds'
    analysis objects, study.kinds.analyses; None: ratings then consistency)."""
    if analyses is None:
        rows = rating_rows(res) + _consistency_rows(res)
    else:
        rows = [r for a in analyses for r in a.primary_rows(res)]
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "analysis"])
    out.insert(1, "analysis", res.options.primary)
    return out[COLUMNS]


def primary_description(primary: str, *, saliency: bool = True, consistency: bool = True,
                        pairwise: bool = False) -> str:
    """The declared primary analysis in words, naming only the studies the file holds
    (`saliency`: ratings of saliency or likert; `pairwise`: choices between methods)."""
    sal, con = PRIMARIES[primary].labels
    text = "; ".join((sal, con))
    parts = [p for p, keep in ((sal, saliency), (con, consistency)) if keep and p]
    if pairwise:
        from study.kinds.analyses import PAIRWISE
        parts.append(PAIRWISE.primaries[primary])
    return "; ".join(parts) if parts else text
