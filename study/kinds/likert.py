"""Likert: the saliency layout with a researcher-worded agreement question on its own scale
(default 5 points, strongly disagree .. strongly agree). Primary: CLMM of ratings by method,
as for saliency."""
from __future__ import annotations

from study.kinds.saliency import RatingKind


class Likert(RatingKind):
    name = "likert"
    title = "likert: agreement with a statement about a method's map (own scale)"
    wording = {
        "instructions": (
            "Each question shows a photograph and the same photograph with a coloured map "
            "added by an AI system. Answer the question using the scale below it."
        ),
        "question": "How much do you agree that the marked region is meaningful?",
        "scale": {"points": 5, "labels": {"1": "strongly disagree", "5": "strongly agree"}},
    }

    def analysis(self):
        from study.kinds.analyses import RATINGS
        return RATINGS


KIND = Likert()
