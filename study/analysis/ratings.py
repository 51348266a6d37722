"""Rating counts and descriptive statistics, all derived from one count cube.

Why counts: ratings take five values, so a (method x data set x score) table of counts
holds everything the saliency analysis needs. It is built with one `np.bincount` over
a million answers; means, SDs, medians, confidence intervals and the Mann-Whitney U
statistics are then exact arithmetic on a few dozen numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.io import RATING_KINDS, SCALE, compact_codes, score_index

POOLED = "(all)"  # the data-set label of rows pooled over data sets


@dataclass(frozen=True)
class CountCube:
    """counts[m, d, k] = number of answers of method m, data set d with score scale[k]."""

    counts: np.ndarray
    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    scale: tuple[int, ...] = SCALE

    def cell(self, method: str, dataset: str | None = None) -> np.ndarray:
        """Score counts of one method in one data set (None or POOLED = pooled)."""
        m = self.methods.index(method)
        if dataset is None or dataset == POOLED:
            return self.counts[m].sum(axis=0)
        return self.counts[m, self.datasets.index(dataset)]

    def pooled(self) -> np.ndarray:
        """(methods, scale) counts pooled over data sets."""
        return self.counts.sum(axis=1)


def count_cube(answers: pd.DataFrame, scale: tuple[int, ...] = SCALE,
               methods: list[str] | None = None) -> CountCube:
    """Count saliency ratings per method, data set and score.

    `methods` fixes the order (e.g. target first); by default methods are sorted.
    Only methods and data sets that occur in saliency rows are kept.
    """
    sal = answers[answers["kind"].isin(RATING_KINDS)]
    m_codes, m_names = compact_codes(sal["method"])
    d_codes, d_used = compact_codes(sal["dataset"])
    d_names = sorted(d_used)
    order = methods if methods is not None else sorted(m_names)
    m_map = np.array([order.index(c) if c in order else -1 for c in m_names] + [-1])
    d_map = np.array([d_names.index(c) for c in d_used] + [-1])
    m_idx = m_map[m_codes]
    d_idx = d_map[d_codes]
    k_idx = score_index(sal["score"].to_numpy(), scale)
    keep = m_idx >= 0
    K, D, M = len(scale), len(d_names), len(order)
    flat = (m_idx[keep] * D + d_idx[keep]) * K + k_idx[keep]
    counts = np.bincount(flat, minlength=M * D * K).reshape(M, D, K).astype(np.int64)
    return CountCube(counts, tuple(order), tuple(d_names), tuple(scale))


def counts_table(cube: CountCube) -> pd.DataFrame:
    """Wide counts, as papers print them: one row per (method, data set) plus pooled rows.

    Columns: method, dataset, one column per score (named "1".."5"), n.
    """
    rows = []
    for m, method in enumerate(cube.methods):
        cells = [(d, cube.counts[m, i]) for i, d in enumerate(cube.datasets)]
        cells.append((POOLED, cube.counts[m].sum(axis=0)))
        for dataset, c in cells:
            row = {"method": method, "dataset": dataset}
            row.update({str(s): int(v) for s, v in zip(cube.scale, c)})
            row["n"] = int(c.sum())
            rows.append(row)
    return pd.DataFrame(rows)


def _median_from_counts(c: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Median of the sample described by counts c (..., K), as np.median would give."""
    n = c.sum(axis=-1)
    cum = np.cumsum(c, axis=-1)
    lo_pos = (n - 1) // 2  # 0-based positions of the middle order statistics
    hi_pos = n // 2
    lo = (cum <= lo_pos[..., None]).sum(axis=-1)
    hi = (cum <= hi_pos[..., None]).sum(axis=-1)
    k = len(values)
    lo_v = values[np.minimum(lo, k - 1)]
    hi_v = values[np.minimum(hi, k - 1)]
    return np.where(n > 0, (lo_v + hi_v) / 2.0, np.nan)


def describe_counts(c: np.ndarray, values, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """n, mean, median, SD (n-1) and a t-interval of the mean, from counts (..., K)."""
    c = np.asarray(c, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    n = c.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (c * v).sum(axis=-1) / n
        ss = (c * (v - mean[..., None]) ** 2).sum(axis=-1)
        sd = np.sqrt(ss / (n - 1))
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n)
    return {"n": n.astype(np.int64), "mean": mean, "median": _median_from_counts(c, v),
            "sd": sd, "ci_low": mean - half, "ci_high": mean + half}


def describe_ratings(cube: CountCube, confidence: float = 0.95) -> pd.DataFrame:
    """Per method, per data set and pooled: n, mean, median, sd, ci_low, ci_high.

    The interval is Student's t interval of the mean (mean ± t(0.975, n-1)·sd/√n),
    which treats answers as independent; see the participant-level table for the
    analysis that does not.
    """
    rows = []
    for m, method in enumerate(cube.methods):
        cells = [(d, cube.counts[m, i]) for i, d in enumerate(cube.datasets)]
        cells.append((POOLED, cube.counts[m].sum(axis=0)))
        for dataset, c in cells:
            d = describe_counts(c, cube.scale, confidence)
            rows.append({"method": method, "dataset": dataset,
                         **{k: (int(v) if k == "n" else float(v)) for k, v in d.items()}})
    out = pd.DataFrame(rows)
    out["ci_method"] = f"t interval, {confidence:.0%}"
    return out
