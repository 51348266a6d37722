"""Consistency (ProtoPShare): two sets of yellow-boxed patches (the nearest patches of two
prototypes of a pair), which set shows one meaning more consistently? Pairs come from the
declared pair sources (`sources`, data-dependent vs Euclidean by default). Primary: logistic
mixed model of the choices against 1/2 (more than two sources: per-source preferences)."""
from __future__ import annotations

import random

from study.kinds.base import CHOICE, QuestionKind



class Consistency(QuestionKind):
    name = "consistency"
    title = "consistency: which of two patch sets shows one meaning (pair sources)"
    answer = CHOICE
    spec_fields = frozenset({"sources"})
    pair_sources = True
    wording = {
        "instructions": (
            "Each question shows two sets of image patches, set A and set B. In each set "
            "the yellow boxes are meant to show one single meaning: a particular "
            "characteristic of one part of the object (for example a striped tail or a "
            "red beak). Choose the set whose boxes show one meaning more consistently. If "
            "you cannot tell, choose \"Impossible to decide\"."
        ),
        "question": "Which set of yellow boxes is more consistent?",
        "choices": {"A": "Set A", "B": "Set B", "undecided": "Impossible to decide"},
    }

    def parse_fields(self, path, data):
        from study.spec import parse_sources
        return {"sources": parse_sources(path, data.get("sources"), self.name)}

    def select(self, spec, groups, rng):
        from study.select import select_pairs
        return select_pairs(spec, groups, rng)

    def render(self, plan, spec):
        from study import media as M
        return [M.patch_set_media(plan[1], spec.media.patch_size),
                M.patch_set_media(plan[2], spec.media.patch_size)]

    def check_size(self, spec):
        from study.media import GAP as gap
        k, size = spec.media.patches_per_prototype, spec.media.patch_size
        return (k * size + gap * (k - 1), 2 * size + gap)

    def captions(self, options, n_media):
        labels = [o["label"] for o in options if o["value"] in ("A", "B")]
        return labels[:n_media] if n_media == 2 else [" / ".join(labels)]

    def simulate(self, info, values, effects, rng: random.Random) -> str:
        """The data-dependent pair with probability 0.45, the other 0.35, undecided 0.2."""
        draw = rng.random()
        if draw < 0.2:
            return "undecided"
        favoured_left = info.get("left_source") == "data_dependent"
        return "A" if favoured_left == (draw < 0.65) else "B"

    def analysis(self):
        from study.kinds.analyses import CONSISTENCY
        return CONSISTENCY


KIND = Consistency()
