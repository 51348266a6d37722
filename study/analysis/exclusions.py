"""Participant exclusion rules, applied in a fixed order and counted for the report.

Why whole participants: every rule judges a person (did they read the instructions,
finish, answer attentively, take part twice), so all of their answers go together.
Rules run in the order listed in `RULE_ORDER`; the report gives both how many
participants each rule flags on its own and how many it removes after the earlier
rules, so the numbers add up to the total excluded.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from study.analysis.io import Needs, compact_codes
from study.errors import StudyError

RULE_ORDER = ("failed_attention", "unfinished", "fast_responder", "duplicate_worker")
DUPLICATE_POLICIES = ("all", "first", "keep")


@dataclass(frozen=True)
class ExclusionRules:
    """Which participants to drop before analysis.

    - attention: drop anyone who failed more than `max_attention_failures` attention
      checks (attention rows with attention_passed = 0); the default 0 drops anyone who
      failed one. A study spec's `attention.max_failures` maps onto it.
    - unfinished: drop anyone whose rows all say finished = 0 (empty = unknown, kept).
    - min_median_response_ms: drop anyone whose median response time over all their
      answers is below this many milliseconds (None = rule off).
    - duplicate_workers: one worker_id under several participant ids: "all" drops every
      one of them, "first" keeps the participant id whose first answer is earliest,
      "keep" turns the rule off. Empty worker ids are never duplicates.
    """

    attention: bool = True
    unfinished: bool = True
    min_median_response_ms: float | None = None
    duplicate_workers: str = "all"
    max_attention_failures: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.max_attention_failures, bool) or not isinstance(
                self.max_attention_failures, int) or self.max_attention_failures < 0:
            raise StudyError(f"exclusion rule max_attention_failures: "
                             f"{self.max_attention_failures!r} is not an integer >= 0")
        if self.duplicate_workers not in DUPLICATE_POLICIES:
            raise StudyError(f"exclusion rule duplicate_workers: {self.duplicate_workers!r} is not "
                             f"one of {', '.join(DUPLICATE_POLICIES)}")
        m = self.min_median_response_ms
        if m is not None and (not np.isfinite(m) or m < 0):
            raise StudyError(f"exclusion rule min_median_response_ms: {m!r} is not a number >= 0")

    def needs(self) -> Needs:
        """The answer columns these rules read."""
        return Needs(attention=self.attention, finished=self.unfinished,
                     response_ms=self.min_median_response_ms is not None,
                     worker_id=self.duplicate_workers != "keep",
                     answered_at=self.duplicate_workers == "first")

    def describe(self) -> dict[str, str]:
        """Human-readable setting of each rule, keyed like RULE_ORDER."""
        m = self.min_median_response_ms
        return {
            "failed_attention": (f"more than {self.max_attention_failures} failed check(s)"
                                 if self.attention else "off"),
            "unfinished": "on" if self.unfinished else "off",
            "fast_responder": f"median response < {m:g} ms" if m is not None else "off",
            "duplicate_worker": {"all": "drop every participant id of a repeated worker",
                                 "first": "keep each worker's earliest participant id",
                                 "keep": "off"}[self.duplicate_workers],
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "exclusions") -> ExclusionRules:
        """Rules from a JSON/YAML object (a study spec's `exclusions` section)."""
        known = {"attention", "unfinished", "min_median_response_ms", "duplicate_workers",
                 "max_attention_failures"}
        for key in data:
            if key not in known:
                raise StudyError(f"{source}: unknown exclusion rule {key!r} "
                                 f"(known: {', '.join(sorted(known))})")
        kw: dict[str, Any] = {}
        for key in ("attention", "unfinished"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise StudyError(f"{source}: field {key!r} must be true or false, got {data[key]!r}")
                kw[key] = data[key]
        if "min_median_response_ms" in data:
            v = data["min_median_response_ms"]
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise StudyError(f"{source}: field 'min_median_response_ms' must be a number "
                                 f"or null, got {v!r}")
            kw["min_median_response_ms"] = None if v is None else float(v)
        if "max_attention_failures" in data:
            v = data["max_attention_failures"]
            if isinstance(v, bool) or not isinstance(v, int):
                raise StudyError(f"{source}: field 'max_attention_failures' must be an integer, "
                                 f"got {v!r}")
            kw["max_attention_failures"] = v
        if "duplicate_workers" in data:
            kw["duplicate_workers"] = str(data["duplicate_workers"])
        return cls(**kw)


def _per_participant(values: np.ndarray, codes: np.ndarray, n_p: int, how: str,
                     fill) -> np.ndarray:
    """A per-participant reduction (min, max, median) of per-row values."""
    red = getattr(pd.Series(values).groupby(codes), how)()
    out = np.full(n_p, fill, dtype=np.result_type(values.dtype, type(fill)))
    out[red.index.to_numpy()] = red.to_numpy()
    return out


def _flags(answers: pd.DataFrame, rules: ExclusionRules) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    codes, names = compact_codes(answers["participant_id"])
    n_p = len(names)
    flags: dict[str, np.ndarray] = {}
    none = np.zeros(n_p, dtype=bool)

    if rules.attention:
        failed = answers["attention_passed"].to_numpy() == 0
        flags["failed_attention"] = (np.bincount(codes[failed], minlength=n_p)
                                     > rules.max_attention_failures)
    else:
        flags["failed_attention"] = none

    if rules.unfinished:
        fin = answers["finished"].to_numpy()
        any_one = np.bincount(codes[fin == 1], minlength=n_p) > 0
        any_zero = np.bincount(codes[fin == 0], minlength=n_p) > 0
        flags["unfinished"] = any_zero & ~any_one
    else:
        flags["unfinished"] = none

    if rules.min_median_response_ms is not None:
        ms = answers["response_ms"].to_numpy()
        ok = ~np.isnan(ms)
        median = _per_participant(ms[ok], codes[ok], n_p, "median", np.nan)
        flags["fast_responder"] = median < rules.min_median_response_ms  # NaN -> False
    else:
        flags["fast_responder"] = none

    if rules.duplicate_workers != "keep":
        w_codes, w_names = compact_codes(answers["worker_id"])
        empty = w_names.index("") if "" in w_names else -2
        w_codes = np.where(w_codes == empty, -1, w_codes)
        # a participant's worker id (the largest code if, oddly, they carry several)
        worker = _per_participant(w_codes, codes, n_p, "max", -1)
        has = worker >= 0
        per_worker = np.bincount(worker[has], minlength=len(w_names))
        flag = has & (per_worker[np.maximum(worker, 0)] > 1)
        if flag.any() and rules.duplicate_workers == "first":
            # ISO 8601 UTC strings sort in time order; only the duplicates' rows are read
            rows = flag[codes]
            at = answers["answered_at"].to_numpy(dtype=object)[rows]
            sub_codes = codes[rows]
            o = np.lexsort((at.astype(str), sub_codes))
            starts = np.r_[True, sub_codes[o][1:] != sub_codes[o][:-1]]
            first_at = np.full(n_p, "", dtype=object)
            first_at[sub_codes[o][starts]] = at[o][starts]
            dup = np.flatnonzero(flag)
            # per worker keep the participant with the earliest first answer (ties: id order)
            ordered = dup[np.lexsort((dup, first_at[dup].astype(str), worker[dup]))]
            is_first = np.r_[True, worker[ordered[1:]] != worker[ordered[:-1]]]
            flag[ordered[is_first]] = False
        flags["duplicate_worker"] = flag
    else:
        flags["duplicate_worker"] = none
    return codes, flags


def apply_exclusions(answers: pd.DataFrame, rules: ExclusionRules = ExclusionRules()
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop excluded participants; return (kept answers, exclusion table).

    The table has an `input` row, one row per rule (RULE_ORDER) and a final `total` row with columns
    rule, setting, participants_flagged (by the rule alone), participants_excluded (newly
    removed, after the earlier rules), answers_removed (their answers), and
    participants_remaining / answers_remaining after that step.
    """
    codes, flags = _flags(answers, rules)
    n_p = len(next(iter(flags.values())))
    rows_per_p = np.bincount(codes, minlength=n_p)
    removed = np.zeros(n_p, dtype=bool)
    settings = rules.describe()
    table = [{"rule": "input", "setting": "", "participants_flagged": 0,
              "participants_excluded": 0, "answers_removed": 0,
              "participants_remaining": int(n_p), "answers_remaining": int(len(codes))}]
    for rule in RULE_ORDER:
        new = flags[rule] & ~removed
        removed |= new
        table.append({
            "rule": rule, "setting": settings[rule],
            "participants_flagged": int(flags[rule].sum()),
            "participants_excluded": int(new.sum()),
            "answers_removed": int(rows_per_p[new].sum()),
            "participants_remaining": int(n_p - removed.sum()),
            "answers_remaining": int(rows_per_p[~removed].sum()),
        })
    table.append({
        "rule": "total", "setting": "", "participants_flagged": int(removed.sum()),
        "participants_excluded": int(removed.sum()),
        "answers_removed": int(rows_per_p[removed].sum()),
        "participants_remaining": int(n_p - removed.sum()),
        "answers_remaining": int(rows_per_p[~removed].sum()),
    })
    kept = answers[~removed[codes]] if removed.any() else answers
    return kept, pd.DataFrame(table)
