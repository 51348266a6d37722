"""The registry of question kinds: one module per kind, one line here.

    from study.kinds import KINDS, kind_of
    kind_of(spec.kind).select(spec, groups, rng)

Everything that differs between kinds (spec fields, selection, media, wording, answer
values, export/import shape, simulation, analysis with prereg text and power) is a hook
of `study.kinds.base.QuestionKind`; nothing outside study/kinds/ compares a kind's name.
Adding a kind: docs/INTERFACES.md, "Adding a question kind".
"""
from __future__ import annotations

from study.errors import StudyError
from study.kinds import agreement, consistency, distinction, likert, pairwise, saliency, similarity
from study.kinds.base import CHOICE, RATING, QuestionKind

REGISTRY: dict[str, QuestionKind] = {m.KIND.name: m.KIND for m in (
    saliency,
    consistency,
    likert,
    pairwise,
    similarity,
    distinction,
    agreement,
)}
KINDS: tuple[str, ...] = tuple(REGISTRY)
ATTENTION = "attention"   # the key's kind of an attention check (not a question kind)

__all__ = ["ATTENTION", "CHOICE", "KINDS", "RATING", "REGISTRY", "QuestionKind", "kind_of"]


def kind_of(name: str) -> QuestionKind:
    """The registered kind `name`; an unknown name is one error naming the known kinds."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise StudyError(f"unknown question kind {name!r} (known kinds: {', '.join(KINDS)})") from None
