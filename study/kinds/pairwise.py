"""Pairwise: the same photograph twice, each with another method's map; which map points to
a more meaningful part? Primary: the share of choices for the target method (logistic mixed
model, participant and item intercepts, against 1/2); with more than two methods a
Bradley-Terry model of every method's worth as a secondary."""
from __future__ import annotations

import math
import random

from study.kinds.base import CHOICE, QuestionKind


class Pairwise(QuestionKind):
    name = "pairwise"
    title = "pairwise: which of two methods' maps on one image is more meaningful"
    answer = CHOICE
    method_choices = True
    wording = {
        "instructions": (
            "Each question shows the same photograph twice, each time with a coloured map "
            "added by an AI system. Choose the map that points to a more meaningful part "
            "of the image. If you cannot tell, choose \"Impossible to decide\"."
        ),
        "question": "Which map points to a more meaningful part of the image?",
        "choices": {"A": "Image A", "B": "Image B", "undecided": "Impossible to decide"},
    }

    def select(self, spec, groups, rng):
        from study.select import select_pairwise
        return select_pairwise(spec, groups, rng)

    def render(self, plan, spec):
        from study import media as M
        return [M.single_media(plan[1], spec.media.max_side), M.single_media(plan[2], spec.media.max_side)]

    def repeatable(self, digests, plan, spec):
        # each method's map meets every other method's: only the pair is unique
        return ["|".join(sorted(digests))]

    def captions(self, options, n_media):
        labels = [o["label"] for o in options if o["value"] in ("A", "B")]
        return labels[:n_media] if n_media == 2 else [" / ".join(labels)]

    def simulate(self, info, values, effects, rng: random.Random) -> str:
        """Undecided with probability 0.2; otherwise the left method with probability
        expit(effect_left - effect_right) (a Bradley-Terry participant; no effects: 1/2)."""
        if rng.random() < 0.2:
            return "undecided"
        d = effects.get(info.get("left_source", ""), 0.0) - effects.get(info.get("right_source", ""), 0.0)
        return "A" if rng.random() < 1.0 / (1.0 + math.exp(-d)) else "B"

    def analysis(self):
        from study.kinds.analyses import PAIRWISE
        return PAIRWISE


KIND = Pairwise()
