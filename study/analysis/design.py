"""Fixed-effect design matrices from a small formula-like spec, as R's model.matrix
builds them with treatment contrasts.

A spec is a list of terms: a column name ("method", "correct") or an interaction of
columns joined by ":" ("correct:method"). A text/categorical column becomes one 0/1
column per level except the reference (the first of `levels[column]` when given, else
the first in sorted order), named "method[b]"; a numeric or boolean column enters as is,
named by the column. An interaction is the product of its columns' codings
("correct:method[b]"). With `intercept` the first column is "(Intercept)".

The mixed models of this package (logit_mixed, bradley_terry, ordinal_design) take the
result; R's formulas name the same columns `methodb`, `correct:methodb`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from study.errors import StudyError

INTERCEPT = "(Intercept)"


@dataclass
class Design:
    """A fixed-effect design: X, its column names, and which columns each term owns."""

    X: np.ndarray
    names: list[str]
    term_columns: dict[str, list[int]] = field(default_factory=dict)
    levels: dict[str, list[str]] = field(default_factory=dict)

    def columns_of(self, term: str) -> list[int]:
        if term not in self.term_columns:
            raise StudyError(f"term {term!r} is not in the model; its terms are "
                             f"{', '.join(self.term_columns)}")
        return self.term_columns[term]


def require_columns(data: pd.DataFrame, columns, what: str = "data") -> None:
    """One error line naming the first missing column and the columns present."""
    for c in columns:
        if c not in data.columns:
            raise StudyError(f"{what}: column {c!r} is missing (columns: "
                             f"{', '.join(map(str, data.columns))})")


def _coding(data: pd.DataFrame, column: str, levels: dict[str, list[str]]
            ) -> tuple[np.ndarray, list[str]]:
    s = data[column]
    if column not in levels and (pd.api.types.is_bool_dtype(s)
                                 or pd.api.types.is_numeric_dtype(s)):
        v = s.to_numpy().astype(np.float64)
        if not np.isfinite(v).all():
            raise StudyError(f"column {column!r}: missing or non-finite values")
        return v[:, None], [column]
    text = s.astype(str).to_numpy()
    seen = sorted(set(text.tolist()))
    order = [str(v) for v in levels.get(column, seen)]
    unknown = sorted(set(seen) - set(order))
    if unknown:
        raise StudyError(f"column {column!r}: value {unknown[0]!r} is not one of the declared "
                         f"levels {', '.join(order)}")
    order = [v for v in order if v in seen]
    if len(order) < 2:
        raise StudyError(f"column {column!r} has one value only ({order[0] if order else ''!r}): "
                         "its effect cannot be fitted")
    levels[column] = order
    cols = np.column_stack([(text == v).astype(np.float64) for v in order[1:]])
    return cols, [f"{column}[{v}]" for v in order[1:]]


def design_matrix(data: pd.DataFrame, terms, *, levels: dict | None = None,
                  intercept: bool = True) -> Design:
    """The design of `terms` on `data` (see the module docstring). `levels` fixes the
    level order (reference first) of categorical columns. Raises StudyError on a
    missing column, a one-level factor or a rank-deficient design."""
    terms = [terms] if isinstance(terms, str) else list(terms)
    require_columns(data, sorted({c for t in terms for c in t.split(":")}))
    lv: dict[str, list[str]] = {k: [str(x) for x in v] for k, v in (levels or {}).items()}
    n = len(data)
    cols: list[np.ndarray] = []
    names: list[str] = []
    owned: dict[str, list[int]] = {}
    if intercept:
        cols.append(np.ones((n, 1)))
        names.append(INTERCEPT)
        owned[INTERCEPT] = [0]
    cache: dict[str, tuple[np.ndarray, list[str]]] = {}
    for term in terms:
        parts = term.split(":")
        mat, nm = np.ones((n, 1)), [""]
        for c in parts:
            if c not in cache:
                cache[c] = _coding(data, c, lv)
            m2, n2 = cache[c]
            mat = (mat[:, :, None] * m2[:, None, :]).reshape(n, -1)
            nm = [f"{a}:{b}" if a else b for a in nm for b in n2]
        owned[term] = list(range(len(names), len(names) + len(nm)))
        cols.append(mat)
        names.extend(nm)
    X = np.column_stack(cols) if cols else np.zeros((n, 0))
    if X.shape[1] and np.linalg.matrix_rank(X) < X.shape[1]:
        raise StudyError(f"the fixed effects ({', '.join(names)}) are not all identifiable on "
                         "these data (a combination of levels never occurs or columns repeat)")
    return Design(X=X, names=names, term_columns=owned, levels=lv)
