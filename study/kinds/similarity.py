"""Prototype–query similarity (Davoodi et al., Sci. Rep. 2023): a prototype's source patch
beside the region of a test (query) image it activates most; rate how similar they are on a
5-point scale. Needs atlases with a `predictions` section (FORMATS.md §4). The rating is of
one method's stimulus, so the analysis is the ratings one: primary the CLMM by method
(study.analysis.ordinal_design.clmm_by_method is the same model, mixed.clmm_ratings),
secondaries participant level (Wilcoxon) and answer level (Mann-Whitney)."""
from __future__ import annotations

from study.errors import StudyError
from study.kinds.saliency import RatingKind
from study.stimuli import wording_new_kinds as W


class Similarity(RatingKind):
    name = "similarity"
    title = "similarity: how alike a prototype and the query region it activates are (1-5)"
    wording = {
        "instructions": W.MODEL_INTRO + " " + W.SIMILARITY_INSTRUCTION,
        "question": W.SIMILARITY_QUESTION,
        "scale": {"points": len(W.SIMILARITY_SCALE),
                  "labels": {str(i + 1): label for i, label in enumerate(W.SIMILARITY_SCALE)}},
    }

    def select(self, spec, groups, rng):
        """`pool_size` prototype–query pairs per (data set, method), from the test images every
        method of the data set predicted (so methods are compared on the same images)."""
        from study.select import Candidate
        from study.stimuli.candidates import similarity_candidates
        from study.stimuli.predictions import require_predictions

        pools = {}
        for dataset, members in groups.items():
            ids = [{p.image_id for p in require_predictions(atlas, self.name)} for _, atlas in members]
            among = set.intersection(*ids)
            for label, atlas in members:
                pairs = similarity_candidates(atlas, spec.pool_size, rng.randrange(2**31), among=among)
                if len(pairs) < spec.pool_size:
                    raise StudyError(f"{spec.path}: field 'pool_size': atlas {atlas.manifest} has "
                                     f"{len(pairs)} usable prototype–query pairs, {spec.pool_size} needed "
                                     f"(rebuild it with more --predictions)")
                pools[f"{dataset}|{label}"] = [Candidate(
                    combo=f"{dataset}|{label}", media=("similarity", atlas, pair),
                    key={"kind": spec.kind, "dataset": dataset, "method": label, "atlas": atlas.name,
                         "image_id": pair.image_id, "prototype": pair.prototype, "band": pair.band,
                         "similarity": round(pair.similarity, 6)}) for pair in pairs]
        return pools

    def render(self, plan, spec):
        from study.stimuli.render import similarity_stimulus
        return similarity_stimulus(plan[1], plan[2]).pngs(spec.media.layout)

    def repeatable(self, digests, plan, spec):
        return digests

    def check_size(self, spec):
        from study.stimuli.render import IMAGE_SIDE
        return (IMAGE_SIDE * 3 // 4, IMAGE_SIDE * 3 // 4)

    def captions(self, options, n_media):
        if n_media == 3:
            return ["Prototype", "New photo", "The matched part, enlarged"]
        return ["Left: the prototype. Middle: the new photo with the matched part. "
                "Right: that part enlarged."]

    def analysis(self):
        from study.kinds.analyses import RATINGS
        return RATINGS


KIND = Similarity()
