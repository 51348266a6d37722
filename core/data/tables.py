"""Readers for the whitespace-separated text tables of CUB-style data sets.

Two kinds: "id name" lists (names may hold spaces, e.g. certainties.txt) read line by
line, and numeric tables read with pandas' C parser (3.7M attribute rows in about a
second). Every problem is one DataError naming the file and line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import DataError


def require(path: Path) -> Path:
    """Return `path` if it is a file, else raise a DataError naming it."""
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    return path


def read_id_names(path: Path) -> tuple[np.ndarray, list[str]]:
    """Lines `id rest-of-line` -> (int ids, names). Blank lines are skipped."""
    require(path)
    ids: list[int] = []
    names: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        if not rest.strip():
            head, _, rest = line.partition("\t")
        try:
            ids.append(int(head))
        except ValueError:
            raise DataError(f"{path} line {lineno}: expected 'id name', got {line[:80]!r}") from None
        if not rest.strip():
            raise DataError(f"{path} line {lineno}: id {head} has no name")
        names.append(rest.strip())
    arr = np.asarray(ids, dtype=np.int64)
    check_unique(arr, path, "id")
    return arr, names


def read_numeric(path: Path, columns: list[str], integer: set[str] = frozenset()) -> dict[str, np.ndarray]:
    """Read the first `len(columns)` whitespace-separated fields of every line.

    Extra trailing fields are ignored (real CUB has a few such rows); missing or
    non-numeric fields are an error naming the line.
    """
    require(path)
    k = len(columns)
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, names=columns, usecols=list(range(k)),
                         engine="c", skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        return {c: np.zeros(0, dtype=np.int64 if c in integer else np.float64) for c in columns}
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from None
    out: dict[str, np.ndarray] = {}
    for c in columns:
        col = df[c]
        if not pd.api.types.is_numeric_dtype(col.dtype):  # strings (object or arrow dtype)
            col = pd.to_numeric(col, errors="coerce")
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(f"{path} line {_line_of(path, int(bad[0]))}: missing or non-numeric field {c!r}")
        if c in integer:
            ints = values.astype(np.int64)
            wrong = np.flatnonzero(ints != values)
            if wrong.size:
                raise DataError(f"{path} line {_line_of(path, int(wrong[0]))}: field {c!r} is not an integer")
            out[c] = ints
        else:
            out[c] = values
    return out


def _line_of(path: Path, row: int) -> int:
    """1-based line number of data row `row` (blank lines are skipped by the parser)."""
    seen = -1
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                seen += 1
                if seen == row:
                    return lineno
    return row + 1


def check_unique(ids: np.ndarray, path: Path, what: str) -> None:
    """Duplicated ids in one file are an error naming the id."""
    if ids.size:
        s = np.sort(ids)
        dup = s[1:][s[1:] == s[:-1]]
        if dup.size:
            raise DataError(f"{path}: {what} {int(dup[0])} appears more than once")


def check_same_ids(ref: np.ndarray, ref_path: Path, ids: np.ndarray, path: Path, what: str = "image id") -> None:
    """`ids` (one per row of `path`) must be exactly the ids of `ref_path`, each once."""
    check_unique(ids, path, what)
    missing = np.setdiff1d(ref, ids, assume_unique=True)
    if missing.size:
        raise DataError(f"{what} {int(missing[0])} is in {ref_path.name} but not in {path}")
    extra = np.setdiff1d(ids, ref, assume_unique=True)
    if extra.size:
        raise DataError(f"{what} {int(extra[0])} is in {path} but not in {ref_path}")


def rows_of(ref_sorted: np.ndarray, ids: np.ndarray, ref_path: Path, path: Path, what: str = "image id") -> np.ndarray:
    """Row index in sorted `ref_sorted` of each id; an unknown id is an error naming it."""
    pos = np.searchsorted(ref_sorted, ids)
    pos_c = np.clip(pos, 0, max(len(ref_sorted) - 1, 0))
    ok = (pos < len(ref_sorted)) & (ref_sorted[pos_c] == ids) if len(ref_sorted) else np.zeros(len(ids), bool)
    if not ok.all():
        bad = int(ids[np.flatnonzero(~ok)[0]])
        raise DataError(f"{what} {bad} is in {path} but not in {ref_path}")
    return pos_c
