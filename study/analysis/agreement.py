"""Inter-rater agreement: Krippendorff's alpha with a seeded bootstrap interval.

Why alpha: participants see overlapping but different items (versions), so the
reliability data are incomplete; Krippendorff's alpha handles any number of raters
per unit and missing values, and has an ordinal metric for ratings (nominal for
choices). Computed from the coincidence matrix (Krippendorff 2011, "Computing
Krippendorff's alpha-reliability"): units are items, values are the participants'
answers, units with fewer than two answers are not pairable and are left out.

Bootstrap: items are resampled with replacement (seeded); each resample's alpha is a
weighted sum of per-item coincidence matrices, so all resamples are one matrix
product. The interval is the percentile interval.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.io import compact_codes


def _unit_coincidences(units: np.ndarray, values: np.ndarray, n_values: int) -> np.ndarray:
    """(pairable units, V, V) coincidences o_u[c, k] = n_uc (n_uk - [c = k]) / (m_u - 1)."""
    u_codes, u_inv = np.unique(units, return_inverse=True)
    counts = np.bincount(u_inv * n_values + values,
                         minlength=len(u_codes) * n_values).reshape(len(u_codes), n_values)
    counts = counts.astype(np.float64)
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    o = counts[:, :, None] * counts[:, None, :]
    idx = np.arange(n_values)
    o[:, idx, idx] -= counts
    return o / (m - 1)[:, None, None]


def _delta2(n_c: np.ndarray, metric: str) -> np.ndarray:
    """Squared difference function(s) for marginals n_c (..., V)."""
    V = n_c.shape[-1]
    if metric == "nominal":
        d = 1.0 - np.eye(V)
        return np.broadcast_to(d, n_c.shape[:-1] + (V, V))
    # ordinal: (sum_{g=c..k} n_g - (n_c + n_k)/2)^2
    cum = np.cumsum(n_c, axis=-1)
    lo = np.minimum.outer(np.arange(V), np.arange(V))
    hi = np.maximum.outer(np.arange(V), np.arange(V))
    below = np.concatenate([np.zeros(n_c.shape[:-1] + (1,)), cum], axis=-1)
    between = cum[..., hi] - below[..., lo]
    return (between - (n_c[..., :, None] + n_c[..., None, :]) / 2) ** 2


def _alpha_from_coincidences(o: np.ndarray, metric: str) -> np.ndarray:
    """alpha for coincidence matrices o (..., V, V)."""
    n_c = o.sum(axis=-1)
    n = n_c.sum(axis=-1)
    d2 = _delta2(n_c, metric)
    observed = (o * d2).sum(axis=(-2, -1))
    expected = (n_c[..., :, None] * n_c[..., None, :] * d2).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - (n - 1) * observed / expected


def _codes(values, levels) -> tuple[np.ndarray, list]:
    values = np.asarray(values)
    levels = list(levels) if levels is not None else sorted(pd.unique(values).tolist())
    codes = pd.Index(levels).get_indexer(values)
    if (codes < 0).any():
        raise ValueError(f"value {values[codes < 0][0]!r} is not one of the levels {levels}")
    return codes.astype(np.int64), levels


def krippendorff_alpha(units, values, *, metric: str = "ordinal", levels=None) -> float:
    """Krippendorff's alpha of (unit, value) answers; `levels` orders the values
    (ordinal metric; default sorted)."""
    codes, levels = _codes(values, levels)
    o = _unit_coincidences(np.asarray(units), codes, len(levels))
    if len(o) == 0:
        return float("nan")
    return float(_alpha_from_coincidences(o.sum(axis=0), metric))


def alpha_with_ci(units, values, *, metric: str, levels=None, resamples: int = 1000,
                  confidence: float = 0.95, seed: int = 0) -> dict:
    """alpha, a percentile bootstrap interval over units, and the counts behind it."""
    codes, levels = _codes(values, levels)
    o = _unit_coincidences(np.asarray(units), codes, len(levels))
    row = {"metric": metric, "units": int(len(o)), "pairable_values": float(o.sum()),
           "alpha": np.nan, "ci_low": np.nan, "ci_high": np.nan, "ci_level": confidence,
           "resamples": int(resamples), "ci_method": "percentile bootstrap over items"}
    if len(o) < 2:
        return row
    row["alpha"] = float(_alpha_from_coincidences(o.sum(axis=0), metric))
    if resamples > 0:
        rng = np.random.default_rng(seed)
        w = rng.multinomial(len(o), np.full(len(o), 1.0 / len(o)), size=resamples)
        flat = o.reshape(len(o), -1)
        boot = _alpha_from_coincidences((w @ flat).reshape(resamples, *o.shape[1:]), metric)
        boot = boot[np.isfinite(boot)]
        if len(boot):
            q = (1 - confidence) / 2
            row["ci_low"], row["ci_high"] = (float(v) for v in np.quantile(boot, [q, 1 - q]))
    return row


def agreement_table(answers: pd.DataFrame, methods: list[str] | None, scale, *,
                    resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Ordinal alpha of the ratings of each rating kind (saliency, likert: per method and all
    methods) and nominal alpha of the choices of each choice kind (consistency, pairwise),
    each with its bootstrap interval."""
    rows = []
    from study.kinds import RATING, REGISTRY
    present = set(answers["kind"].astype(str).unique().tolist())
    for name, kind in REGISTRY.items():       # registry order: saliency, consistency, ...
        if name not in present or kind.answer != RATING:
            continue
        sal = answers[answers["kind"] == name]
        item = compact_codes(sal["item_id"])[0]
        score = sal["score"].to_numpy().astype(np.int64)
        meth = sal["method"].astype(str).to_numpy()
        groups = [("(all methods)", np.ones(len(sal), dtype=bool))]
        groups += [(m, meth == m) for m in (methods or sorted(set(meth.tolist())))]
        for label, sel in groups:
            rows.append({"answers": f"{name} ratings", "method": label,
                         **alpha_with_ci(item[sel], score[sel], metric="ordinal",
                                         levels=list(scale), resamples=resamples,
                                         confidence=confidence, seed=seed)})
    for name, kind in REGISTRY.items():
        if name not in present or kind.answer == RATING:
            continue
        con = answers[answers["kind"] == name]
        item = compact_codes(con["item_id"])[0]
        src = con["choice_source"].astype(str).to_numpy()
        rows.append({"answers": f"{name} choices", "method": "",
                     **alpha_with_ci(item, src, metric="nominal", resamples=resamples,
                                     confidence=confidence, seed=seed)})
    return pd.DataFrame(rows)
