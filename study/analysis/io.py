"""Read and validate the answers CSV (FORMATS.md §6) into a compact, typed table.

Why one module: every statistic downstream trusts this table, so all checks live here
and fail with one line naming the row and column. Strings are kept as pandas
categoricals (a million answers hold only a handful of distinct methods, kinds and
scores), read with pyarrow's multithreaded CSV reader when it is installed; values are
checked and converted once per distinct category, never once per row.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.csvsep import separator_message
from study.errors import StudyError
from study.kinds import ATTENTION, RATING, REGISTRY

SCALE = (1, 2, 3, 4, 5)
KINDS = (*REGISTRY, ATTENTION)          # the registered question kinds, then attention checks
RATING_KINDS = tuple(k.name for k in REGISTRY.values() if k.answer == RATING)
SOURCES = ("data_dependent", "euclidean", "undecided")
UNDECIDED = "undecided"

ALL_COLUMNS = (
    "study_id", "participant_id", "platform", "worker_id", "version", "position", "item_id",
    "kind", "dataset", "method", "answer", "left_source", "right_source", "choice_source",
    "attention_passed", "response_ms", "answered_at", "finished", "condition",
)
ALWAYS = ("participant_id", "item_id", "kind", "answer")
OPTIONAL = ("worker_id", "version", "dataset", "method", "choice_source",
            "attention_passed", "response_ms", "answered_at", "finished",
            "left_source", "right_source", "condition")
# the longest response time accepted (ms): a question shown for more than a day is a
# recording error (the battery found 10^20 ms), refused like a negative time
MAX_RESPONSE_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Needs:
    """Which optional columns the enabled analyses and exclusion rules require."""

    attention: bool = True      # failed attention checks
    finished: bool = True       # unfinished participants
    response_ms: bool = False   # fast responders
    worker_id: bool = True      # duplicate workers
    answered_at: bool = False   # duplicate workers, keep the first participant id


def compact_codes(s: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(codes 0..k-1 over the categories actually used, their names) of a categorical.

    Same as `cat.remove_unused_categories()` but O(n) with a bincount instead of a sort
    of a million codes; codes are int64 so they can be combined arithmetically.
    """
    codes = s.cat.codes.to_numpy().astype(np.int64)
    cats = s.cat.categories
    if len(codes) == 0:
        return codes, []
    used = np.bincount(codes, minlength=len(cats)) > 0
    remap = np.cumsum(used) - 1
    return remap[codes], [str(c) for c in np.asarray(cats, dtype=object)[used]]



def score_index(scores: np.ndarray, scale) -> np.ndarray:
    """Each score's position in `scale` (-1 for a score between the scale's values)."""
    lookup = np.full(max(scale) + 1, -1)
    lookup[np.asarray(scale)] = np.arange(len(scale))
    return lookup[scores]

def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            row = next(csv.reader(fh), None)
    except FileNotFoundError:
        raise StudyError(f"{path}: answers file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path}: cannot read answers file ({exc})") from None
    if not row:
        raise StudyError(f"{path}: empty file, expected a header row with {', '.join(ALWAYS)}")
    return [c.strip() for c in row]


def read_answers_csv(path: str | Path, needs: Needs = Needs()) -> pd.DataFrame:
    """Read the columns analysis uses, every one as a categorical of strings ('' = empty).

    Columns only exclusion rules use (`answered_at`, unique per row and costly,
    `worker_id`, `finished`, `attention_passed`) are read only when `needs` asks for
    them; `response_ms` is always read when present, so a negative time is refused
    whether or not the fast-responder rule is on.
    """
    path = Path(path)
    header = _header(path)
    if not set(ALWAYS) & set(header):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            wrong_separator = separator_message(path, fh.readline(), ALL_COLUMNS)
        if wrong_separator:
            raise StudyError(wrong_separator)
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise StudyError(f"{path}: column {dup[0]!r} appears more than once in the header")
    skip = {c for c, needed in (("answered_at", needs.answered_at),
                                ("worker_id", needs.worker_id),
                                ("finished", needs.finished),
                                ("attention_passed", needs.attention)) if not needed}
    wanted = [c for c in header if (c in ALWAYS or c in OPTIONAL) and c not in skip]
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:  # pragma: no cover - pyarrow ships with streamlit
        pa = None
    try:
        if pa is not None:
            dict_str = pa.dictionary(pa.int32(), pa.string())
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=1 << 24),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted,
                    column_types={c: pa.string() if c == "answered_at" else dict_str
                                  for c in wanted},
                    strings_can_be_null=False, quoted_strings_can_be_null=False,
                    null_values=[]),
            )
            df = table.to_pandas()
        else:  # pragma: no cover
            df = pd.read_csv(path, usecols=wanted, dtype=str, keep_default_na=False,
                             encoding="utf-8-sig").astype("category")
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"{path}: malformed CSV ({msg})") from None
    df.columns = [c.strip() for c in df.columns]
    return df


def _text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _as_category(s: pd.Series) -> pd.Series:
    """A column as a categorical of strings, missing values as ''."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        if pd.api.types.is_string_dtype(cats.dtype) and not s.isna().any():
            return s
    obj = s.astype(object)
    obj = obj.where(obj.notna(), "")
    return obj.map(_text).astype("category")


class _Checker:
    """Finds the first row where a categorical column holds a bad value."""

    def __init__(self, df: pd.DataFrame, source: str):
        self.df, self.source = df, source

    def where(self, pos: int) -> str:
        label = int(self.df.index[pos])
        if self.source.endswith(".csv"):
            return f"{self.source} row {label + 1} (line {label + 2})"
        return f"{self.source} row {label + 1}"

    def fail(self, pos: int, column: str, message: str) -> None:
        raise StudyError(f"{self.where(pos)}, column {column!r}: {message}")

    def convert(self, column: str, mask: np.ndarray | None, table: dict[str, object],
                what: str, default) -> np.ndarray:
        """Map each category through `table`; a category missing from it is an error
        (only for rows in `mask`). Returns the per-row converted values."""
        s = self.df[column]
        cats = list(s.cat.categories)
        codes = s.cat.codes.to_numpy().astype(np.int64)
        ok = np.array([c in table for c in cats] + [True], dtype=bool)  # code -1 never occurs
        bad = ~ok[codes]
        if mask is not None:
            bad &= mask
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            self.fail(pos, column, f"{cats[codes[pos]]!r} is not {what}")
        values = np.array([table.get(c, default) for c in cats] + [default])
        out = values[codes]
        if mask is not None:
            out = np.where(mask, out, default)
        return out


def _numeric_table(cats, *, integer: bool, allow_empty: bool, lo=None, hi=None) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in cats:
        if c == "":
            if allow_empty:
                out[c] = np.nan
            continue
        try:
            v = float(c)
        except ValueError:
            continue
        if not np.isfinite(v) or (integer and v != int(v)) or (lo is not None and v < lo) \
                or (hi is not None and v > hi):
            continue
        out[c] = v
    return out


def _refuse_duplicate_answers(chk: _Checker, df: pd.DataFrame, source: str) -> None:
    """One answer per (participant, item): the store enforces it, so a second row is a
    merged or doubled file, and analysing it would count one person's answer twice."""
    pid = df["participant_id"].cat.codes.to_numpy().astype(np.int64)
    item = df["item_id"].cat.codes.to_numpy().astype(np.int64)
    key = pid * (len(df["item_id"].cat.categories) + 1) + item
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    if not same.any():
        return
    n_dup = int(same.sum())
    first, second = (int(order[i]) for i in (np.flatnonzero(same)[0], np.flatnonzero(same)[0] + 1))
    where_first, where_second = chk.where(first), chk.where(second)
    raise StudyError(f"{where_second}: participant {df['participant_id'].iloc[second]!r} answered item "
                     f"{df['item_id'].iloc[second]!r} already in {where_first.removeprefix(source).strip()} "
                     f"({n_dup} duplicate (participant_id, item_id) row{'s' if n_dup > 1 else ''} in all; "
                     f"each answer must appear once: re-export the answers or remove the duplicates)")


def _check_sources(chk: _Checker, df: pd.DataFrame, consistency: np.ndarray,
                   sources: tuple[str, ...] | None) -> None:
    """Consistency rows: `choice_source` is a declared pair source or undecided, and
    `left_source` / `right_source` (when present) are declared pair sources. Declared:
    `sources` (the study's), else data_dependent and euclidean."""
    known = tuple(sources) if sources else SOURCES[:2]
    names = ", ".join(known)
    chk.convert("choice_source", consistency, {s: s for s in (*known, UNDECIDED)},
                f"a declared pair source (known: {names}, or {UNDECIDED})", "")
    for col in ("left_source", "right_source"):
        if col in df.columns:
            chk.convert(col, consistency, {s: s for s in known},
                        f"a declared pair source (known: {names})", "")


def _item_values(df: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]] | None:
    """Per-row codes of what an item must keep in every row, and their names (None: no column).
    For the pair sources the unordered pair: sides may be counterbalanced between people."""
    if column != "pair sources":
        if column not in df.columns:
            return None
        s = df[column]
        return s.cat.codes.to_numpy().astype(np.int64), [str(c) for c in s.cat.categories]
    if "left_source" not in df.columns or "right_source" not in df.columns:
        return None
    left, right = df["left_source"], df["right_source"]
    names = sorted(set(map(str, left.cat.categories)) | set(map(str, right.cat.categories)))
    index = pd.Index(names)
    lc = index.get_indexer(left.cat.categories)[left.cat.codes.to_numpy()].astype(np.int64)
    rc = index.get_indexer(right.cat.categories)[right.cat.codes.to_numpy()].astype(np.int64)
    k = len(names)
    lo, hi = np.minimum(lc, rc), np.maximum(lc, rc)
    pairs = lo * k + hi
    used = np.flatnonzero(np.bincount(pairs, minlength=k * k))
    remap = np.zeros(k * k, dtype=np.int64)
    remap[used] = np.arange(len(used))
    labels = [f"{names[int(p) // k]} / {names[int(p) % k]}" for p in used]
    return remap[pairs], labels


def _refuse_inconsistent_items(chk: _Checker, df: pd.DataFrame) -> None:
    """An item is one stimulus: its kind, data set, method and pair sources are the same in
    every row. A hand-merged file with one mislabelled row would otherwise be analysed as
    if that answer were about another method."""
    item = df["item_id"].cat.codes.to_numpy().astype(np.int64)
    n_items = len(df["item_id"].cat.categories)
    for column, label in (("kind", "kind"), ("dataset", "data set"), ("method", "method"),
                          ("pair sources", "pair sources")):
        found = _item_values(df, column)
        if found is None:
            continue
        values, names = found
        some = np.zeros(n_items, dtype=np.int64)
        some[item] = values                # one of each item's values (whichever lands last)
        differs = values != some[item]     # O(n), no sort: any row unlike that one
        if not differs.any():
            continue
        bad = np.zeros(n_items, dtype=bool)
        bad[item[differs]] = True
        rows = np.flatnonzero(bad[item])
        first = int(rows[0])
        same_item = rows[item[rows] == item[first]]
        second = int(same_item[values[same_item] != values[first]][0])
        where_first = chk.where(first).removeprefix(chk.source).strip()
        n_bad = int(bad.sum())
        what = "the left/right sources" if column == "pair sources" else f"column {column!r}"
        raise StudyError(
            f"{chk.where(second)}: item {df['item_id'].iloc[second]!r} has {label} "
            f"{names[values[second]]!r} but {names[values[first]]!r} in {where_first} "
            f"({n_bad} item{'s' if n_bad > 1 else ''} with differing {what}; an item is one stimulus, "
            f"the same in every row: correct the mislabelled rows or re-export the answers)")


def validate_answers(df: pd.DataFrame, source: str = "answers", needs: Needs = Needs(),
                     scale: tuple[int, ...] = SCALE,
                     sources: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Check the columns and values analysis needs; return the typed table.

    Returned columns: participant_id, worker_id, item_id, kind, dataset, method,
    choice_source, left_source, right_source, condition (categoricals of strings; pair sources are
    checked against `sources`, default data_dependent and euclidean), score (int8, 0 outside rating rows),
    version (int64, -1 when empty), attention_passed and finished (int8: 1, 0, -1 empty),
    response_ms (float64, NaN when empty), answered_at (strings, read only when needed:
    unique per row, so not categorical). The index
    is the 0-based data row of the input, so later errors can still name rows.
    """
    df = df.copy(deep=False)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ALWAYS if c not in df.columns]
    if missing:
        raise StudyError(f"{source}: missing column {missing[0]!r} "
                         f"(the answers CSV needs {', '.join(ALWAYS)}; see FORMATS.md §6)")
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index(drop=True)
    for c in df.columns:
        if (c in ALWAYS or c in OPTIONAL) and c != "answered_at":
            df[c] = _as_category(df[c])
    chk = _Checker(df, source)
    n = len(df)
    if n == 0:
        raise StudyError(f"{source}: no answers (the file has a header but no rows)")

    kind_codes = chk.convert("kind", None, {k: i for i, k in enumerate(KINDS)},
                             f"a known kind (known kinds: {', '.join(KINDS)})", -1).astype(np.int8)

    def rows_of(test) -> np.ndarray:
        return np.isin(kind_codes, [i for i, k in enumerate(KINDS) if k in REGISTRY and test(REGISTRY[k])])

    rating = rows_of(lambda k: k.answer == RATING)
    saliency = rows_of(lambda k: k.method_column)     # rows that name their method
    consistency = rows_of(lambda k: k.pair_sources)   # rows choosing between pair sources
    by_method = rows_of(lambda k: k.method_choices)   # rows choosing between methods
    attention = kind_codes == KINDS.index(ATTENTION)

    pid = df["participant_id"]
    empty_code = pid.cat.categories.get_indexer([""])[0]
    if empty_code >= 0:
        chk.fail(int(np.flatnonzero(pid.cat.codes.to_numpy().astype(np.int64) == empty_code)[0]),
                 "participant_id", "empty participant id")

    _refuse_duplicate_answers(chk, df, source)

    score = chk.convert("answer", rating, {str(v): v for v in scale},
                        f"a rating on the scale {scale[0]}..{scale[-1]}", 0).astype(np.int16)

    out = pd.DataFrame(index=df.index)
    out["participant_id"] = df["participant_id"]
    out["item_id"] = df["item_id"]
    out["kind"] = pd.Categorical.from_codes(kind_codes, KINDS)
    out["score"] = score

    for col in ("dataset", "method"):
        if col in df.columns:
            s = df[col]
            if saliency.any():
                chk.convert(col, saliency, {c: True for c in s.cat.categories if c != ""},
                            f"a {col} name (rating rows need one)", True)
            out[col] = s
        elif saliency.any():
            raise StudyError(f"{source}: missing column {col!r} (needed for rating rows; "
                             f"use the unblinded export)")
        else:
            out[col] = pd.Categorical([""] * n)

    if consistency.any():
        if "choice_source" not in df.columns:
            raise StudyError(f"{source}: missing column 'choice_source' (needed for consistency "
                             f"rows; use the unblinded export)")
        _check_sources(chk, df, consistency, sources)
    if by_method.any():
        for col in ("choice_source", "left_source", "right_source"):
            if col not in df.columns:
                raise StudyError(f"{source}: missing column {col!r} (needed for rows choosing "
                                 f"between methods; use the unblinded export)")
            chk.convert(col, by_method, {c: c for c in df[col].cat.categories if c != ""},
                        "a method label (rows choosing between methods need one)", "")
    out["choice_source"] = df["choice_source"] if "choice_source" in df.columns \
        else pd.Categorical([""] * n)
    for col in ("left_source", "right_source", "condition"):
        out[col] = df[col] if col in df.columns else pd.Categorical([""] * n)

    _refuse_inconsistent_items(chk, df)   # after each row's own values are checked

    if "version" in df.columns:
        table = _numeric_table(df["version"].cat.categories, integer=True, allow_empty=False, lo=0)
        v = chk.convert("version", consistency, table, "a questionnaire version (integer >= 0)", -1)
        out["version"] = np.nan_to_num(v.astype(float), nan=-1).astype(np.int64)
    else:
        out["version"] = np.zeros(n, dtype=np.int64)

    flag = {"1": 1, "0": 0, "": -1, "true": 1, "false": 0, "True": 1, "False": 0}
    if "attention_passed" in df.columns:
        strict = {k: v for k, v in flag.items() if k != ""}
        mask = attention if needs.attention else np.zeros(n, dtype=bool)
        a = chk.convert("attention_passed", mask, strict, "1 or 0 (attention rows need it)", -1)
        out["attention_passed"] = np.where(attention, a, -1).astype(np.int8)
    elif needs.attention and attention.any():
        raise StudyError(f"{source}: missing column 'attention_passed' (needed for the "
                         f"attention-check exclusion; turn it off with --keep-failed-attention)")
    else:
        out["attention_passed"] = np.full(n, -1, dtype=np.int8)

    if "finished" in df.columns:
        out["finished"] = chk.convert("finished", None, flag, "1, 0 or empty", -1).astype(np.int8)
    elif needs.finished:
        raise StudyError(f"{source}: missing column 'finished' (needed for the unfinished-"
                         f"participant exclusion; turn it off with --keep-unfinished)")
    else:
        out["finished"] = np.full(n, -1, dtype=np.int8)

    if "response_ms" in df.columns:
        table = _numeric_table(df["response_ms"].cat.categories, integer=False,
                               allow_empty=True, lo=0, hi=MAX_RESPONSE_MS)
        out["response_ms"] = chk.convert("response_ms", None, table,
                                         f"a response time in ms (a number from 0 to {MAX_RESPONSE_MS}"
                                         f" = 24 h, or empty when unknown)",
                                         np.nan).astype(np.float64)
    elif needs.response_ms:
        raise StudyError(f"{source}: missing column 'response_ms' (needed for the fast-"
                         f"responder exclusion; drop --min-median-ms)")
    else:
        out["response_ms"] = np.full(n, np.nan)

    if "worker_id" in df.columns:
        out["worker_id"] = df["worker_id"]
    elif needs.worker_id:
        raise StudyError(f"{source}: missing column 'worker_id' (needed for the duplicate-"
                         f"worker exclusion; turn it off with --keep-duplicate-workers)")
    else:
        out["worker_id"] = pd.Categorical([""] * n)
    if "answered_at" in df.columns:
        out["answered_at"] = df["answered_at"].fillna("").astype(str)
    elif needs.answered_at:
        raise StudyError(f"{source}: missing column 'answered_at' (needed to keep each "
                         f"duplicate worker's first participant id)")
    else:
        out["answered_at"] = ""
    return out


def load_answers(answers: str | Path | pd.DataFrame, needs: Needs = Needs(),
                 scale: tuple[int, ...] = SCALE,
                 sources: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Read (if a path) and validate answers; see `validate_answers` for the result."""
    if isinstance(answers, pd.DataFrame):
        return validate_answers(answers, "answers", needs, scale, sources)
    path = Path(answers)
    return validate_answers(read_answers_csv(path, needs), str(path), needs, scale, sources)
