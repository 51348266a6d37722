"""HIVE's agreement task (Kim et al., ECCV 2022): the model's prediction (the class name, in
the question) with its explanation (the predicted class's prototype evidence); the
participant states how confident they are that the prediction is right on HIVE's 4-point
scale. Correct and incorrect predictions are balanced (HIVE: 5 + 5). Needs atlases with a
`predictions` section (FORMATS.md §4). The answers CSV's `condition` says whether the
prediction was right (`model=right|wrong`). Primary: CLMM of confidence on prediction
correctness x method (study/kinds/agreement_analysis.py): do a method's explanations let
people tell right from wrong predictions better?"""
from __future__ import annotations

import random

from study.errors import StudyError
from study.kinds.base import RATING, QuestionKind
from study.stimuli import wording_new_kinds as W

SAYS, EXPLAINED = W.AGREEMENT_INSTRUCTION.split(". ", 1)   # "The AI system says ... {class_name}" | the rest


class Agreement(QuestionKind):
    name = "hive_agreement"
    title = "hive_agreement: confidence that the model's prediction is right (1-4)"
    answer = RATING
    method_column = True
    wording = {
        "instructions": f"{W.MODEL_INTRO} Each question shows a photo and the system's answer. {EXPLAINED}",
        "question": W.AGREEMENT_QUESTION,
        "scale": {"points": len(W.AGREEMENT_SCALE),
                  "labels": {str(i + 1): label for i, label in enumerate(W.AGREEMENT_SCALE)}},
    }

    def select(self, spec, groups, rng):
        """`pool_size` test images per (data set, method), half right and half wrong predictions;
        each method on test images of its own (a photo never repeats in a version)."""
        from study.select import Candidate
        from study.stimuli.candidates import agreement_candidates
        from study.stimuli.predictions import require_predictions, shown_class_name

        pools = {}
        for dataset, members in groups.items():
            taken: set[int] = set()   # each method on its own test images: a photo never repeats
            for label, atlas in members:
                among = {p.image_id for p in require_predictions(atlas, self.name)} - taken
                found = agreement_candidates(atlas, spec.pool_size, rng.randrange(2**31), among=among)
                taken |= {p.image_id for p in found}
                if len(found) < spec.pool_size:
                    raise StudyError(f"{spec.path}: field 'pool_size': atlas {atlas.manifest} has {len(found)} "
                                     f"test images with evidence to show, {spec.pool_size} needed "
                                     f"(rebuild it with more --predictions)")
                pools[f"{dataset}|{label}"] = [Candidate(
                    combo=f"{dataset}|{label}", media=("agreement", atlas, p),
                    key={"kind": spec.kind, "dataset": dataset, "method": label, "atlas": atlas.name,
                         "image_id": p.image_id, "predicted": p.predicted, "label": p.label,
                         "model_correct": bool(p.correct),
                         "class_name": shown_class_name(atlas, p.predicted)}) for p in found]
        return pools

    def render(self, plan, spec):
        from study.stimuli.render import agreement_stimulus
        return agreement_stimulus(plan[1], plan[2]).pngs()

    def check_size(self, spec):
        from study.stimuli.render import IMAGE_SIDE
        return (IMAGE_SIDE, IMAGE_SIDE * 3 // 4)

    def item_question(self, spec, key):
        return SAYS.replace("{class_name}", key["class_name"]) + ". " + spec.wording["question"]

    def captions(self, options, n_media):
        return ["Photo", "The AI system's explanation"][:n_media]

    def condition(self, info):
        return "model=right" if info.get("model_correct") else "model=wrong"

    def simulate(self, info, values, effects, rng: random.Random) -> str:
        """A rounded normal draw around the scale's middle, shifted up for a right prediction and
        down for a wrong one by half the gap 0.6 + the method's effect (explanations that help
        tell right from wrong predictions widen it), clipped to the scale."""
        middle = (1 + len(values)) / 2
        half_gap = (0.6 + effects.get(info.get("method", ""), 0.0)) / 2
        mean = middle + (half_gap if info.get("model_correct") else -half_gap)
        return str(min(max(round(rng.gauss(mean, 0.8)), 1), len(values)))

    def analysis(self):
        from study.kinds.agreement_analysis import AGREEMENT
        return AGREEMENT


KIND = Agreement()
