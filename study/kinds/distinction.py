"""HIVE's distinction task (Kim et al., ECCV 2022): for one test image, the prototype evidence
behind the model's top-k classes (k = `panels`, 4 by default), class names hidden, panels in a
random order with the target panel's position balanced; the participant picks the panel of
the class the model predicted (`pick: predicted`, HIVE's variant) or of the true class
(`pick: correct`; a wrong prediction then shows the top k-1 classes and the true one).
Needs atlases with a `predictions` section (FORMATS.md §4).

The key records the target panel's letter and whether the model was right; the answers CSV
carries `choice_source` (target | other) and `condition` (`model=right;k=4`), so accuracy can
be split by correct and incorrect predictions. Primary: logistic mixed model of a correct
pick against chance 1/k (offset logit(1/k)), target method vs each baseline
(study/kinds/distinction_analysis.py)."""
from __future__ import annotations

import math
import random

from study.errors import StudyError
from study.kinds.base import CHOICE, QuestionKind
from study.stimuli import wording_new_kinds as W

HIT, MISS = "target", "other"        # answers CSV `choice_source`: the target panel or another
MAX_PANELS = len(W.ANSWER_LETTERS)


def condition_text(model_right: bool, k: int) -> str:
    """The answers CSV `condition` of a distinction item (read back by the analysis)."""
    return f"model={'right' if model_right else 'wrong'};k={k}"


class Distinction(QuestionKind):
    name = "hive_distinction"
    title = "hive_distinction: which of k hidden classes' evidence did the model predict"
    answer = CHOICE
    method_column = True
    spec_fields = frozenset({"panels", "pick"})
    wording = {
        "instructions": f"{W.MODEL_INTRO} {W.DISTINCTION_INSTRUCTION} {W.DISTINCTION_CHANCE_NOTE}",
        "question": W.DISTINCTION_QUESTION_PREDICTED,
        "choices": {letter: f"Panel {letter}" for letter in W.ANSWER_LETTERS},
    }

    # --- spec ----------------------------------------------------------------------------
    def parse_fields(self, path, data):
        from study.stimuli.candidates import TARGETS
        k = data.get("panels", W.DISTINCTION_K)
        if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= MAX_PANELS:
            raise StudyError(f"{path}: field 'panels': must be an integer from 2 to {MAX_PANELS} "
                             f"(classes shown per question), got {k!r}")
        pick = data.get("pick", TARGETS[0])
        if pick not in TARGETS:
            raise StudyError(f"{path}: field 'pick': must be one of {', '.join(TARGETS)} "
                             f"(which panel is the right answer), got {pick!r}")
        return {"kind_options": {"panels": k, "pick": pick}}

    def fit_wording(self, path, wording, fields):
        opts = fields["kind_options"]
        k = opts["panels"]
        wording["choices"] = {key: label for key, label in list(wording["choices"].items())[:k]}
        wording["instructions"] = wording["instructions"].replace("{k}", str(k))
        if opts["pick"] == "correct" and wording["question"] == W.DISTINCTION_QUESTION_PREDICTED:
            wording["question"] = W.DISTINCTION_QUESTION_CORRECT
        return wording

    # --- selection and media ---------------------------------------------------------------
    def select(self, spec, groups, rng):
        """`pool_size` test images per (data set, method), balanced correct/incorrect, the target
        panel's position balanced. Each method gets test images of its own (drawn in the spec's
        method order): the same photo with two methods' evidence in one version would let the
        second answer lean on the first; the item intercepts absorb how hard an image is."""
        from study.select import Candidate
        from study.stimuli.candidates import distinction_candidates, panel_orders
        from study.stimuli.predictions import require_predictions

        k, pick = spec.kind_options["panels"], spec.kind_options["pick"]
        pools = {}
        for dataset, members in groups.items():
            taken: set[int] = set()   # each method on its own test images: a photo never repeats
            for label, atlas in members:
                among = {p.image_id for p in require_predictions(atlas, self.name, k)} - taken
                found = distinction_candidates(atlas, k, spec.pool_size, rng.randrange(2**31), target=pick,
                                               among=among)
                taken |= {c.prediction.image_id for c in found}
                if len(found) < spec.pool_size:
                    raise StudyError(f"{spec.path}: field 'pool_size': atlas {atlas.manifest} has {len(found)} "
                                     f"test images with evidence for {k} classes, {spec.pool_size} needed "
                                     f"(rebuild it with more --predictions, or ask for fewer panels)")
                orders = panel_orders(len(found), k, rng.randrange(2**31))
                pool = []
                for cand, order in zip(found, orders):
                    panel_seed = rng.randrange(2**31)
                    pool.append(Candidate(
                        combo=f"{dataset}|{label}", media=("distinction", atlas, cand, tuple(order), panel_seed),
                        key={"kind": spec.kind, "dataset": dataset, "method": label, "atlas": atlas.name,
                             "image_id": cand.prediction.image_id, "pick": pick, "panels": k,
                             "answer": W.ANSWER_LETTERS[list(order).index(0)],
                             "model_correct": bool(cand.correct),
                             "classes": [cand.classes[i].cls for i in order]}))
                pools[f"{dataset}|{label}"] = pool
        return pools

    def render(self, plan, spec):
        """[test image, the k panels in a grid two panels wide] (layout side_by_side: the app's
        two columns show the panels near their own size) or [test image, panel A, ...]."""
        from study.media import GAP, hstack, png_bytes, vstack
        from study.stimuli.render import distinction_stimulus
        stim = distinction_stimulus(plan[1], plan[2], plan[3], seed=plan[4])
        if spec.media.layout == "side_by_side":
            rows = [hstack(stim.panels[i:i + 2], gap=4 * GAP) for i in range(0, len(stim.panels), 2)]
            return [png_bytes(stim.image), png_bytes(vstack(rows, gap=4 * GAP))]
        return stim.pngs()

    def check_size(self, spec):
        from study.stimuli.render import IMAGE_SIDE
        return (IMAGE_SIDE, IMAGE_SIDE * 3 // 4)

    def captions(self, options, n_media):
        if n_media == 2:
            return ["Photo", "Evidence panels " + ", ".join(o["value"] for o in options)]
        return ["Photo"] + [f"Panel {o['value']}" for o in options][:n_media - 1]

    # --- answers -------------------------------------------------------------------------------
    def choice_source(self, info, answer):
        return HIT if answer == info.get("answer") else MISS

    def condition(self, info):
        return condition_text(bool(info.get("model_correct")), int(info.get("panels", W.DISTINCTION_K)))

    def simulate(self, info, values, effects, rng: random.Random) -> str:
        """The target panel with probability expit(logit(1/k) + 1 + effect of the method) (a
        participant above chance), otherwise one of the other panels at random."""
        k = len(values)
        eta = -math.log(k - 1) + 1.0 + effects.get(info.get("method", ""), 0.0)
        if rng.random() < 1.0 / (1.0 + math.exp(-eta)):
            return str(info["answer"])
        return rng.choice([v for v in values if v != info["answer"]])

    def analysis(self):
        from study.kinds.distinction_analysis import DISTINCTION
        return DISTINCTION


KIND = Distinction()
