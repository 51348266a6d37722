"""The interface every question kind implements (see docs/INTERFACES.md, "Adding a question kind").

A kind is one module under study/kinds/ holding one `QuestionKind` subclass instance, and one
line in study/kinds/__init__.py. Everything that differs between kinds is a method or an
attribute here; the rest of the toolkit loops over the registry and never compares a kind
name. Heavy imports (PIL, pandas, the selection code) happen inside the methods, so the
registry can be imported by the spec parser and the answers reader without cycles.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, ClassVar

RATING = "rating"    # the answer is a point of the wording's scale (1..points)
CHOICE = "choice"    # the answer is a key of the wording's choices (A, B, undecided, ...)


class QuestionKind:
    """One question kind: spec fields, selection, media, wording, answers, platforms,
    simulation and analysis. Subclasses set the class attributes and override the hooks."""

    name: ClassVar[str]
    title: ClassVar[str]                   # one line for the builder's menu
    answer: ClassVar[str]                  # RATING or CHOICE
    wording: ClassVar[dict]                # default wording (instructions, question, scale|choices)
    spec_fields: ClassVar[frozenset[str]] = frozenset()   # top-level spec fields only this kind takes
    # which key fields a participant's answer is unblinded with in the answers CSV
    method_column: ClassVar[bool] = False  # the item's key names one method (export's `method`)
    pair_sources: ClassVar[bool] = False   # choices are the declared pair sources (answers CSV)
    method_choices: ClassVar[bool] = False # choices are methods (left/right/choice_source name methods)
    two_pictures_side_by_side: ClassVar[bool] = False   # the `media.layout: side_by_side` stacks 2 pictures
    mturk_shape: ClassVar[str] = "crowd-radio-group"     # how MTurk's layout asks (import reads every shape)

    def analysis(self) -> Any:
        """The kind's analysis (a study.kinds.analyses.KindAnalysis): its primary analyses
        in the registry of primaries, its secondaries, prereg text and power simulation.
        Every registered kind declares one, so `analyze` can always analyse its answers."""
        raise NotImplementedError

    # --- spec ------------------------------------------------------------------------
    def parse_fields(self, path: Path, data: dict) -> dict:
        """Validate this kind's own top-level spec fields; returns Spec keyword arguments.
        A field of another kind is refused by the spec parser before this is called."""
        return {}

    def fit_wording(self, path: Path, wording: dict, fields: dict) -> dict:
        """The spec's merged wording adapted to this kind's own validated fields (`fields`:
        what `parse_fields` returned), e.g. as many answer letters as panels shown."""
        return wording

    def choice_values(self, wording: dict) -> list[str]:
        if self.answer == RATING:
            return [str(i) for i in range(1, int(wording["scale"]["points"]) + 1)]
        return list(wording["choices"])

    def options(self, wording: dict) -> list[dict]:
        """Answer options shown to participants: value stored, label displayed."""
        if self.answer == RATING:
            labels = wording["scale"]["labels"]
            out = []
            for value in self.choice_values(wording):
                text = labels.get(value)
                out.append({"value": value, "label": f"{value} ({text})" if text else value})
            return out
        return [{"value": k, "label": v} for k, v in wording["choices"].items()]

    # --- selection and media -----------------------------------------------------------
    def select(self, spec, groups: dict, rng: random.Random) -> dict:
        """Candidate pools per combination (study.select.Candidate lists)."""
        raise NotImplementedError

    def render(self, plan: tuple, spec) -> list[bytes]:
        """The PNG bytes of one candidate's `media` plan."""
        raise NotImplementedError

    def repeatable(self, digests: list[str], plan: tuple, spec) -> list[str]:
        """The pictures of an item that must not appear twice in a version (default: all)."""
        return digests

    def check_size(self, spec) -> tuple[int, int]:
        """Size of one attention-check card, as large as one of this kind's pictures."""
        return (spec.media.max_side, spec.media.max_side * 3 // 4)

    def item_question(self, spec, key: dict) -> str:
        """The question text of one item (`key`: its private key entry; default: the
        wording's question). Participants read it: it never names a method."""
        return spec.wording["question"]

    def captions(self, options: list[dict], n_media: int) -> list[str]:
        """Neutral captions of an item's pictures (participants read them)."""
        if n_media == 2:
            return ["Photograph", "Photograph with the AI system's map"]
        return ["Left: photograph. Right: the same photograph with the AI system's map."]

    def methods_in(self, info: dict) -> list[str]:
        """The method labels one item's key entry compares (empty: the kind has no target
        method, e.g. consistency compares pair sources of one method)."""
        if self.method_column:
            return [info["method"]] if info.get("method") else []
        if self.method_choices:
            return [m for m in (info.get("left_source"), info.get("right_source")) if m]
        return []

    @property
    def has_target(self) -> bool:
        """The analysis compares a target method with baselines (--target is needed)."""
        return self.method_column or self.method_choices

    # --- answers -----------------------------------------------------------------------
    def choice_source(self, info: dict, answer: str) -> str:
        """What the answer chose, unblinded (answers CSV `choice_source`; '' for ratings)."""
        left, right = info.get("left_source", ""), info.get("right_source", "")
        if left or right:
            return {"A": left, "B": right}.get(answer, "undecided")
        return ""

    def condition(self, info: dict) -> str:
        """An item-level condition the analysis splits by (answers CSV `condition`; '' : none),
        e.g. whether the model's prediction shown was right."""
        return ""

    def simulate(self, info: dict, values: list[str], effects: dict[str, float],
                 rng: random.Random) -> str:
        """One simulated answer to an item whose private key entry is `info`."""
        raise NotImplementedError
