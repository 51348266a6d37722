"""Candidate selection for HIVE's distinction and agreement tasks and for prototype–query
similarity, from an atlas's `predictions` section (study/stimuli/predictions.py).

All choices are seeded and deterministic. Correct and incorrect predictions are balanced
(half each where the atlas has enough; the other group fills the rest), as HIVE did
(5 correct + 5 incorrect images per participant). `among` restricts the images to a set
of ids (e.g. the images every method's atlas has, so methods are compared on the same
images).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from common.atlas import Atlas
from study.errors import StudyError
from study.stimuli.predictions import Box, ClassEvidence, Evidence, Prediction, SourcePatch, require_predictions

TARGETS = ("predicted", "correct")   # distinction: pick the model's prediction (HIVE) or the true class


@dataclass(frozen=True)
class DistinctionCandidate:
    prediction: Prediction
    classes: tuple[ClassEvidence, ...]   # k classes, the target first (panel order is chosen later)
    target: int                          # the class the right answer names

    @property
    def correct(self) -> bool:
        return self.prediction.correct


@dataclass(frozen=True)
class SimilarityPair:
    """A prototype and a query (test) image it activates: Davoodi et al.'s prototype–query pair."""
    image_id: int
    image: str
    region: Box          # the crop of the query image that is shown
    prototype: int
    box: Box             # the region of the query the prototype activates most (95th percentile)
    source: SourcePatch  # the prototype's source patch
    similarity: float
    contribution: float
    band: str            # "high" or "low": the half of the candidates' similarities it comes from


def _balanced(items: Sequence[Prediction], n: int, seed: int) -> list[Prediction]:
    """n items, half correct and half incorrect where possible, in a seeded order."""
    rng = np.random.default_rng(seed)
    right = [items[i] for i in rng.permutation(len(items)) if items[i].correct]
    wrong = [items[i] for i in rng.permutation(len(items)) if not items[i].correct]
    n_wrong = min(len(wrong), n // 2)
    n_right = min(len(right), n - n_wrong)
    n_wrong = min(len(wrong), n - n_right)
    chosen = right[:n_right] + wrong[:n_wrong]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def _restrict(items: list[Prediction], among: Iterable[int] | None) -> list[Prediction]:
    if among is None:
        return items
    keep = {int(i) for i in among}
    return [p for p in items if p.image_id in keep]


def _distinction_classes(p: Prediction, k: int, target: str) -> tuple[tuple[ClassEvidence, ...], int] | None:
    top = list(p.top[:k])
    if target == "predicted" or p.correct or any(c.cls == p.label for c in top):
        chosen, goal = top, (p.predicted if target == "predicted" else p.label)
    elif p.truth is not None:   # HIVE: a wrong prediction shows the top k-1 and the true class
        chosen, goal = top[:k - 1] + [p.truth], p.label
    else:
        return None
    if len(chosen) < k or any(not c.usable() for c in chosen):
        return None
    first = [c for c in chosen if c.cls == goal]
    return tuple(first + [c for c in chosen if c.cls != goal]), goal


def distinction_candidates(atlas: Atlas, k: int = 4, n: int = 20, seed: int = 0, *, target: str = "predicted",
                           among: Iterable[int] | None = None) -> list[DistinctionCandidate]:
    """Test images for the distinction task: each with k classes that all have prototype
    evidence to show, the target class first (`target`: "predicted" — which did the model
    predict, HIVE's variant — or "correct" — which is the true class, where a wrong
    prediction shows the top k−1 classes and the true one). Balanced correct/incorrect."""
    if target not in TARGETS:
        raise StudyError(f"distinction target must be one of {', '.join(TARGETS)}, got {target!r}")
    if k < 2:
        raise StudyError(f"distinction needs at least 2 classes per question, got k={k}")
    items = _restrict(require_predictions(atlas, "distinction", k), among)
    usable = {}
    for p in items:
        found = _distinction_classes(p, k, target)
        if found is not None:
            usable[p.image_id] = found
    chosen = _balanced([p for p in items if p.image_id in usable], n, seed)
    return [DistinctionCandidate(p, usable[p.image_id][0], usable[p.image_id][1]) for p in chosen]


def agreement_candidates(atlas: Atlas, n: int = 10, seed: int = 0, *,
                         among: Iterable[int] | None = None) -> list[Prediction]:
    """Test images for the agreement task: the predicted class has evidence to show;
    balanced correct/incorrect (HIVE: 5 + 5)."""
    items = _restrict(require_predictions(atlas, "agreement"), among)
    return _balanced([p for p in items if p.predicted_class.usable()], n, seed)


def similarity_candidates(atlas: Atlas, n: int = 30, seed: int = 0, *, per_image: int = 1,
                          among: Iterable[int] | None = None) -> list[SimilarityPair]:
    """Prototype–query pairs: for each test image the prototypes that contribute most to its
    predicted class (Davoodi et al. used the prototypes most important to the decision), at
    most `per_image` per image; half from the upper and half from the lower half of the
    candidates' similarities, so the pairs span high and lower activations. Seeded order."""
    items = _restrict(require_predictions(atlas, "similarity"), among)
    pool: list[tuple[Prediction, Evidence]] = []
    for p in items:
        pool += [(p, e) for e in p.predicted_class.usable()[:per_image]]
    if not pool:
        return []
    sims = np.array([e.similarity for _, e in pool])
    median = float(np.median(sims))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    high = [pool[i] for i in order if sims[i] > median]
    low = [pool[i] for i in order if sims[i] <= median]
    n_high = min(len(high), (n + 1) // 2)
    n_low = min(len(low), n - n_high)
    n_high = min(len(high), n - n_low)
    picked = [(p, e, "high") for p, e in high[:n_high]] + [(p, e, "low") for p, e in low[:n_low]]
    out = []
    for i in rng.permutation(len(picked)):
        p, e, band = picked[i]
        assert e.source is not None
        out.append(SimilarityPair(p.image_id, p.image, p.region, e.prototype, e.box, e.source, e.similarity,
                                  e.contribution, band))
    return out


def balanced_positions(n: int, k: int, seed: int) -> list[int]:
    """Where the target panel goes in each of n questions: every position 0..k-1 equally
    often (counts differ by at most one), in a seeded order."""
    rng = np.random.default_rng(seed)
    positions = [q % k for q in range(n)]
    start = int(rng.integers(k))   # which positions get the extra one when k does not divide n
    positions = [(p + start) % k for p in positions]
    return [positions[i] for i in rng.permutation(n)]


def panel_orders(n: int, k: int, seed: int) -> list[list[int]]:
    """For n questions, the order of their k panels: `order[q][pos]` is the index into the
    candidate's `classes` (0 = the target) shown at position pos (A, B, ...). The target's
    position is balanced over the questions (`balanced_positions`), the others shuffled."""
    rng = np.random.default_rng(seed + 1)
    orders = []
    for pos in balanced_positions(n, k, seed):
        rest = [int(i) + 1 for i in rng.permutation(k - 1)]
        orders.append(rest[:pos] + [0] + rest[pos:])
    return orders
