"""The primary result in words: one sentence per primary test, made from its numbers.

Why: a table of `estimate / ci_low / p_holm / reject` says nothing until read with
care; the report, the summary JSON, the LaTeX table and the app's Analysis page open
with the same sentence (then the table). The sentence is honest about what the numbers
allow: a significant result states its direction; a non-significant one says the data
do not show a difference (not that there is none); a mixed model that did not converge
says so first and claims nothing.

    "Participants rated ProtoPool higher than ProtoPool w/o focal: odds ratio 2.31
     [1.42, 3.77], p = 0.0008, 40 participants, 60 items; primary analysis: CLMM."
"""
from __future__ import annotations

import math

import pandas as pd

from study.analysis.plan import PRIMARIES

# the value of "no difference" per effect of the primary table (study/analysis/primary.py)
NULL_VALUES = {"odds ratio of a higher rating": 1.0, "mean difference of participant mean ratings": 0.0,
               "rank-biserial correlation": 0.0, "P(data-dependent) of the median participant": 0.5,
               "P(data-dependent) of the median participant and pair": 0.5,
               "mean of participant proportions data-dependent": 0.5, "proportion data-dependent": 0.5,
               "share of choices for the target (median participant and item)": 0.5,
               "mean of participant shares of target choices": 0.5, "proportion of target choices": 0.5}
EFFECT_WORDS = {"odds ratio of a higher rating": "odds ratio",
                "mean difference of participant mean ratings": "mean difference of participants' mean ratings",
                "rank-biserial correlation": "rank-biserial correlation",
                "P(data-dependent) of the median participant":
                    "probability of choosing the data-dependent pair (median participant)",
                "P(data-dependent) of the median participant and pair":
                    "probability of choosing the data-dependent pair (median participant and pair)",
                "mean of participant proportions data-dependent":
                    "mean proportion of data-dependent choices per participant",
                "proportion data-dependent": "proportion of data-dependent choices",
                "share of choices for the target (median participant and item)":
                    "share of choices for it (median participant and item)",
                "mean of participant shares of target choices": "mean share of choices for it per participant",
                "proportion of target choices": "proportion of choices for it"}


def format_p(p: float, label: str = "p") -> str:
    """p to one (below 0.001) or two significant digits; below 0.0001 as a bound."""
    if p is None or not math.isfinite(p):
        return f"{label} not available"
    if p < 0.0001:
        return f"{label} < 0.0001"
    return f"{label} = {p:.1g}" if p < 0.001 else f"{label} = {p:.2g}" if p < 0.1 else f"{label} = {p:.2f}"


def _num(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.4g}"


def _n_words(n: str) -> str:
    """'120 answers, 40 participants, 60 items' -> '40 participants, 60 items' (answers are
    implied by the unit); other n texts as they are."""
    parts = [p.strip() for p in str(n).split(",")]
    kept = [p for p in parts if not p.endswith(" answers")] or parts
    return ", ".join(kept)


def _numbers(row, p_label: str) -> str:
    effect = EFFECT_WORDS.get(row["effect"], row["effect"])
    return (f"{effect} {_num(row['estimate'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}], "
            f"{format_p(row['p_holm'], p_label)}, {_n_words(row['n'])}")


def _is_consistency(study: str) -> bool:
    """Whether the rows of `study` (a kind) are choices between pair sources (the kind's
    analysis is study.kinds.analyses.CONSISTENCY)."""
    from study.analysis.consistency import choice_kinds

    return study in choice_kinds()


def row_sentence(row, *, primary: str, converged: bool | None = None, convergence: str = "",
                 several: bool = False) -> str:
    """The sentence of one row of the primary table (a dict or Series with its columns)."""
    p_label = "Holm-adjusted p" if several else "p"
    numbers = _numbers(row, p_label)
    if _is_consistency(str(row["study"])):
        method = PRIMARIES[primary].choice_test
        null = 0.5
        if converged is False:
            return (f"No conclusion on consistency: the primary {method} did not converge ({convergence}); "
                    f"its {numbers} must not be reported as a result.")
        if bool(row["reject"]):
            side = "data-dependent" if row["estimate"] > null else "Euclidean"
            return (f"Participants judged the {side} prototype pairs more consistent: {numbers}; "
                    f"primary analysis: {method}.")
        return (f"The data do not show that participants judged either kind of prototype pair more "
                f"consistent: {numbers}; primary analysis: {method}.")
    method = PRIMARIES[primary].rating_test
    target, _, baseline = str(row["comparison"]).partition(" vs ")
    null = NULL_VALUES.get(row["effect"], 0.0)
    if converged is False:
        return (f"No conclusion: the primary {method} fit did not converge ({convergence}), so its estimate "
                f"for {target} vs {baseline} ({numbers}) must not be reported as a result.")
    if bool(row["reject"]):
        direction = "higher" if row["estimate"] > null else "lower"
        return f"Participants rated {target} {direction} than {baseline}: {numbers}; primary analysis: {method}."
    wanted = {"greater": "higher than", "less": "lower than"}.get(str(row["alternative"]), "differently from")
    return (f"The data do not show that participants rated {target} {wanted} {baseline}: {numbers}; "
            f"primary analysis: {method}.")


def multi_sentence(rows: pd.DataFrame, *, primary: str, converged: bool | None = None,
                   convergence: str = "") -> str:
    """The sentence of a consistency study with more than two pair sources: the omnibus
    test of "no source preferred" decides what is claimed; the per-source numbers follow
    as estimates (which source leads is stated only when the omnibus test rejects)."""
    first = rows.iloc[0]
    rest = rows.iloc[1:]
    plan = PRIMARIES[primary]
    method = plan.choice_test + plan.multi_suffix
    names = str(first["comparison"]).removeprefix("no source preferred among ")
    k = len(names.split(", "))
    test = (f"{first['statistic']} = {_num(first['value'])}, {format_p(first['p_value'])}, "
            f"{_n_words(first['n'])}")
    words = plan.multi_words
    per = "; ".join(f"{r['comparison']} {_num(r['estimate'])} [{_num(r['ci_low'])}, "
                    f"{_num(r['ci_high'])}]" for _, r in rest.iterrows())
    detail = f"{words} {per}" if per else ""
    if converged is False:
        return (f"No conclusion on consistency: the primary {method} of the {k} pair sources did not "
                f"converge ({convergence}); its numbers must not be reported as a result.")
    if bool(first["reject"]):
        lead = ""
        if len(rest) and plan.multi_lead:
            ests = rest["estimate"].to_numpy(dtype=float)
            if plan.multi_reference is not None:    # relative to the reference (odds ratio 1)
                best = "" if ests.max() <= plan.multi_reference else str(rest["comparison"].iloc[int(ests.argmax())]
                                                        ).partition(" vs ")[0]
                lead = best or str(rest["comparison"].iloc[0]).partition(" vs ")[2]
            else:
                lead = str(rest["comparison"].iloc[int(ests.argmax())])
            lead = f" (highest estimate: {lead})"
        return (f"Participants did not choose the {k} pair sources ({names}) equally often{lead}: "
                f"{test}" + (f"; {detail}" if detail else "") + f"; primary analysis: {method}.")
    return (f"The data do not show that participants preferred any of the {k} pair sources ({names}) "
            f"over the others: {test}" + (f"; {detail}" if detail else "")
            + f"; primary analysis: {method}.")


def study_sentences(res, study: str) -> list[str]:
    """The sentences of one study's rows of the primary table (the report's primary box)."""
    table: pd.DataFrame | None = res.primary
    if table is None or not len(table):
        return []
    from study.kinds import kind_of
    rows = table[table["study"] == study]
    return kind_of(study).analysis().sentences(res, rows)


def primary_sentences(res) -> list[str]:
    """One sentence per row of the primary table, in its order (empty without one)."""
    table: pd.DataFrame | None = res.primary
    if table is None or not len(table):
        return []
    return [s for study in dict.fromkeys(table["study"].tolist()) for s in study_sentences(res, str(study))]


def primary_sentence(res) -> str:
    """All of them as one paragraph (what the report, JSON, LaTeX and app show first)."""
    return " ".join(primary_sentences(res))
