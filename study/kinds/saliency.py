"""Saliency (ProtoPool): a photograph and the same photograph with a prototype's map; rate
how salient the marked feature is on a 1-5 scale. Primary: CLMM of ratings by method."""
from __future__ import annotations

import random

from study.kinds.base import RATING, QuestionKind


class RatingKind(QuestionKind):
    """A rating of one method's map on one image (saliency, likert): shared selection,
    media and simulation; each kind brings its wording and its analysis."""

    answer = RATING
    method_column = True
    two_pictures_side_by_side = True

    def select(self, spec, groups, rng):
        from study.select import select_heatmaps
        return select_heatmaps(spec, groups, rng)

    def render(self, plan, spec):
        from study import media as M
        return M.saliency_media(plan[1], plan[2], spec.media.layout, spec.media.max_side)

    def repeatable(self, digests, plan, spec):
        # `same_images: true`: every method shows the same photograph; only the map is unique
        return digests[1:] if spec.same_images and len(digests) == 2 else digests

    def simulate(self, info, values, effects, rng: random.Random) -> str:
        """A rounded normal draw around 3 + the method's effect, clipped to the scale."""
        rating = round(rng.gauss(3.0 + effects.get(info.get("method", ""), 0.0), 1.0))
        return str(min(max(rating, 1), len(values)))


class Saliency(RatingKind):
    name = "saliency"
    title = "saliency: rate how salient a method's map is (1-5)"
    wording = {
        "instructions": (
            "Each question shows a photograph and, next to it, the same photograph with a "
            "coloured map added by an AI system. Warm colours (red, yellow) mark the part "
            "of the image the system relies on. Rate how salient (clearly visible and "
            "meaningful) the marked feature is to you. There is no time limit and there "
            "are no right or wrong answers."
        ),
        "question": "How salient is the feature pointed out by the AI system?",
        "scale": {"points": 5, "labels": {"1": "least salient", "5": "most salient"}},
    }

    def analysis(self):
        from study.kinds.analyses import RATINGS
        return RATINGS


KIND = Saliency()
