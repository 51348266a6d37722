"""Consistency (ProtoPShare) choices: which pair source participants preferred.

Why exclude "undecided" from the test: the question is whether, among people who
could decide, one similarity wins more often than chance (p = ½). The undecided count
is still reported. The interval of the proportion preferring the data-dependent pairs
is Clopper-Pearson (exact, conservative) from SciPy's binomtest; Wilson's interval is
given next to it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.io import SOURCES

POOLED_VERSION = "(all)"


def choice_kinds() -> tuple[str, ...]:
    """The registered kinds whose answers are choices between pair sources (their analysis
    is study.kinds.analyses.CONSISTENCY), in registry order."""
    from study.kinds import REGISTRY
    from study.kinds.analyses import CONSISTENCY

    return tuple(name for name, kind in REGISTRY.items() if kind.analysis() is CONSISTENCY)


def consistency_answers(answers: pd.DataFrame) -> pd.DataFrame:
    """The rows of `answers` whose kind is one of `choice_kinds()`."""
    return answers[answers["kind"].astype(str).isin(choice_kinds())]


def consistency_counts(answers: pd.DataFrame, sources=None) -> pd.DataFrame:
    """Counts of choices per questionnaire version and pooled.

    Columns: version (str; POOLED_VERSION for the pooled row), data_dependent,
    euclidean (or the declared `sources`, in order), undecided, n.
    """
    cols = SOURCES if not sources else (*sources, "undecided")
    con = consistency_answers(answers)
    src = con["choice_source"].astype(str).to_numpy()
    ver = con["version"].to_numpy()
    versions = sorted(set(ver.tolist()))
    rows = []
    for v in versions + [None]:
        sel = np.ones(len(src), dtype=bool) if v is None else ver == v
        c = {s: int((src[sel] == s).sum()) for s in cols}
        rows.append({"version": POOLED_VERSION if v is None else str(v), **c, "n": int(sel.sum())})
    return pd.DataFrame(rows, columns=["version", *cols, "n"])


def binomial(k: int, n: int, *, p: float = 0.5, alternative: str = "two-sided",
             confidence: float = 0.95) -> pd.DataFrame:
    """Binomial test of k successes in n trials as a tidy one-row table (pingouin style):
    test, statistic ("k"), k, n, proportion, null_proportion, p_value, alternative, effect
    size Cohen's h against the null, Clopper-Pearson and Wilson intervals."""
    row = binomial_test(k, n, p=p, alternative=alternative, confidence=confidence)
    h = 2 * np.arcsin(np.sqrt(row["proportion"])) - 2 * np.arcsin(np.sqrt(p)) if n else np.nan
    return pd.DataFrame([{"test": "binomial", "statistic": "k", **row, "cohen_h": float(h)}])


def binomial_test(k: int, n: int, *, p: float = 0.5, alternative: str = "two-sided",
                  confidence: float = 0.95) -> dict:
    """The fields of `binomial` as a dict (to build tables of several tests)."""
    if n == 0:
        return {"k": 0, "n": 0, "proportion": np.nan, "p_value": np.nan,
                "alternative": alternative, "null_proportion": p,
                "ci_low": np.nan, "ci_high": np.nan, "wilson_low": np.nan, "wilson_high": np.nan,
                "ci_level": confidence, "ci_method": "Clopper-Pearson (exact)"}
    res = stats.binomtest(int(k), int(n), p=p, alternative=alternative)
    cp = res.proportion_ci(confidence_level=confidence, method="exact")
    wi = res.proportion_ci(confidence_level=confidence, method="wilson")
    return {"k": int(k), "n": int(n), "proportion": k / n, "p_value": float(res.pvalue),
            "alternative": alternative, "null_proportion": p,
            "ci_low": float(cp.low), "ci_high": float(cp.high),
            "wilson_low": float(wi.low), "wilson_high": float(wi.high),
            "ci_level": confidence, "ci_method": "Clopper-Pearson (exact)"}


def consistency_tests(counts: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per version and pooled: two-sided binomial test of data-dependent vs Euclidean
    preferences against ½, undecided answers excluded. k counts data-dependent wins."""
    rows = []
    for _, r in counts.iterrows():
        n = int(r["data_dependent"] + r["euclidean"])
        rows.append({"version": r["version"], "undecided": int(r["undecided"]),
                     **binomial_test(int(r["data_dependent"]), n, confidence=confidence)})
    return pd.DataFrame(rows)


def consistency_participant_tests(answers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Participant level, per version and pooled: each participant's proportion of
    data-dependent choices among their decided answers; mean proportion with a t
    interval, and a two-sided Wilcoxon signed-rank test of the proportions against ½."""
    from study.analysis.participant_level import mean_difference_ci, wilcoxon_paired

    con = consistency_answers(answers)
    src = con["choice_source"].astype(str).to_numpy()
    keep = src != "undecided"
    frame = pd.DataFrame({"pid": con["participant_id"].astype(str).to_numpy()[keep],
                          "version": con["version"].to_numpy()[keep],
                          "dd": (src[keep] == "data_dependent").astype(np.float64)})
    rows = []
    for v in sorted(set(frame["version"].tolist())) + [None]:
        sub = frame if v is None else frame[frame["version"] == v]
        prop = sub.groupby("pid", sort=True)["dd"].mean().to_numpy()
        ci = mean_difference_ci(prop - 0.5, confidence)
        w = wilcoxon_paired(prop, np.full(len(prop), 0.5), "two-sided") if len(prop) else {}
        rows.append({"version": POOLED_VERSION if v is None else str(v),
                     "participants": int(len(prop)),
                     "mean_proportion": float(prop.mean()) if len(prop) else np.nan,
                     "ci_low": ci["ci_low"] + 0.5, "ci_high": ci["ci_high"] + 0.5,
                     "ci_level": confidence, "W": w.get("W", np.nan),
                     "p_value": w.get("p_value", np.nan), "p_method": w.get("p_method", ""),
                     "test": "Wilcoxon signed-rank of participant proportions vs 1/2"})
    return pd.DataFrame(rows)
