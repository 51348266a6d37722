"""Multiple-comparison corrections.

Why Holm: it controls the family-wise error rate like Bonferroni but is uniformly more
powerful, and needs no assumption about how the comparisons depend on each other (the
baselines are all compared with the same target answers).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN entries are left out and stay NaN)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * q[order])
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def holm_table(rows: list[dict], alpha: float) -> pd.DataFrame:
    """The rows (one per baseline) as a table with Holm-adjusted p-values and decisions."""
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    return out
