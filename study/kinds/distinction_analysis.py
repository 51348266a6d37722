"""Analysis of HIVE's distinction task (question kind `hive_distinction`), reached only through
`DISTINCTION` (study/kinds/distinction.py declares it).

Each answer is a hit (the target panel picked: `choice_source` = target) or a miss; each
item's `condition` says whether the model was right and how many panels it showed (k).
- Declared primary (`clmm`): logistic mixed model of a hit, hit ~ method + (1 | participant)
  + (1 | item), offset logit(1/k) so a method's intercept is its log odds above chance;
  target vs each baseline as a Wald contrast (log odds ratio), Holm
  (study/analysis/logit_mixed.logit_mixed_primary; R: glmer(hit ~ method + offset(...))).
- `participant`: each participant's hit rate per method, Wilcoxon signed-rank target vs
  baseline (paired by participant), Holm.
- `answer`: pooled hit rates, Fisher's exact test target vs baseline, Holm.
- Secondaries: per-method accuracy against chance (binomial), and accuracy split by the
  model's correct and incorrect predictions (HIVE's finding: explanations convince even
  when the model is wrong).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.errors import StudyError
from study.analysis.corrections import holm_table
from study.kinds.analyses import HOW_OFTEN
from study.kinds.target_analysis import Part, TargetAnalysis, paired_wilcoxon

NAME = "hive_distinction"


def parse_condition(text: str, row: int) -> tuple[bool, int]:
    """(model right, k) from a `condition` cell `model=right;k=4`."""
    try:
        fields = dict(part.split("=", 1) for part in str(text).split(";"))
        right, k = fields["model"], int(fields["k"])
        if right not in ("right", "wrong") or k < 2:
            raise ValueError
    except (KeyError, ValueError):
        raise StudyError(f"answers row {row + 2}: column 'condition': distinction rows need "
                         f"'model=right|wrong;k=N' (use the unblinded export), got {text!r}") from None
    return right == "right", k


def distinction_frame(answers: pd.DataFrame, kinds: list[str]) -> pd.DataFrame:
    rows = answers[answers["kind"].isin(kinds)]
    cond = rows["condition"].astype(str)
    first = cond.reset_index().drop_duplicates("condition")   # the first row of each distinct value
    parsed = {c: parse_condition(c, int(i)) for i, c in zip(first["index"], first["condition"])}
    k = np.array([parsed[c][1] for c in cond], dtype=float)
    from study.analysis.logit_mixed import chance_offset
    return pd.DataFrame({"participant": rows["participant_id"].astype(str).to_numpy(),
                         "item": rows["item_id"].astype(str).to_numpy(),
                         "method": rows["method"].astype(str).to_numpy(),
                         "hit": (rows["choice_source"].astype(str) == "target").to_numpy().astype(int),
                         "model_right": np.array([parsed[c][0] for c in cond]),
                         "k": k, "offset": chance_offset(k)})


def accuracy_table(frame: pd.DataFrame, by: list[str], confidence: float) -> pd.DataFrame:
    """Hit rate per group with a Clopper-Pearson interval and a binomial test against 1/k."""
    from study.analysis.consistency import binomial_test
    rows = []
    for key, sub in frame.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        k = float(sub["k"].iloc[0])
        r = binomial_test(int(sub["hit"].sum()), len(sub), p=1.0 / k, alternative="greater",
                          confidence=confidence)
        ci = binomial_test(int(sub["hit"].sum()), len(sub), p=1.0 / k, confidence=confidence)   # two-sided CI
        rows.append({**dict(zip(by, key)), "answers": len(sub), "hits": int(sub["hit"].sum()),
                     "accuracy": r["proportion"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                     "chance": 1.0 / k, "p_above_chance": r["p_value"], "ci_level": confidence})
    return pd.DataFrame(rows)


def participant_level(frame, target, baselines, *, alternative, alpha, confidence) -> pd.DataFrame:
    rates = frame.groupby(["participant", "method"])["hit"].mean().unstack()
    return paired_wilcoxon(rates, target, baselines, alternative=alternative, alpha=alpha, confidence=confidence)


def answer_level(frame, target, baselines, *, alternative, alpha, confidence) -> pd.DataFrame:
    from scipy import stats
    z = stats.norm.ppf(0.5 + confidence / 2)
    t = frame[frame["method"] == target]["hit"]
    rows = []
    for b in baselines:
        o = frame[frame["method"] == b]["hit"]
        table = [[int(t.sum()), len(t) - int(t.sum())], [int(o.sum()), len(o) - int(o.sum())]]
        p = float(stats.fisher_exact(table, alternative=alternative).pvalue)
        p1, p2 = t.mean(), o.mean()
        se = float(np.sqrt(p1 * (1 - p1) / len(t) + p2 * (1 - p2) / len(o)))
        rows.append({"target": target, "baseline": b, "accuracy_target": p1, "accuracy_baseline": p2,
                     "difference": p1 - p2, "ci_low": p1 - p2 - z * se, "ci_high": p1 - p2 + z * se,
                     "statistic": "Fisher exact", "value": float(stats.fisher_exact(table).statistic),
                     "n": len(t) + len(o), "p_value": p, "alternative": alternative, "ci_level": confidence})
    return holm_table(rows, alpha)


class Distinction(TargetAnalysis):
    """Picks among k evidence panels (distinction)."""
    name = NAME
    primaries = {
        "clmm": "logistic mixed model of a correct pick with chance offset logit(1/k), participant and "
                "item random intercepts; Wald contrast of the target against each baseline (log odds "
                "ratio), Holm",
        "participant": "Wilcoxon signed-rank test of participant hit rates, target vs each baseline (Holm)",
        "answer": "Fisher's exact test of pooled hit rates, target vs each baseline (Holm)",
    }
    secondaries = ("accuracy per method against chance 1/k (binomial)",
                   "accuracy split by the model's correct and incorrect predictions",
                   "participant level: Wilcoxon signed-rank", "answer level: Fisher's exact test")
    power_simulation = "study.analysis.power_mixed.simulate_power_logit_mixed"
    power_test = "logistic mixed model Wald z of target - baseline, offset logit(1/k)"
    effects = {"clmm": "odds ratio of picking the right panel",
               "participant": "mean difference of participant hit rates",
               "answer": "difference of pooled hit rates"}
    title, test = "HIVE distinction", "a correct pick among k panels, against chance 1/k"
    model_name, mixed_title = "logistic mixed model", "Logistic mixed model"
    mixed_caption = "Target vs baseline (log odds ratio)"
    mixed_parts = (Part("levels", "levels", "Each method's log odds above chance"),)
    describe = (Part("accuracy", "accuracy", "Accuracy per method (chance 1/k)"),
                Part("by_prediction", "accuracy_by_prediction",
                     "Accuracy by the model's correct and incorrect predictions"))
    participant_caption, answer_caption = "Hit rates, Wilcoxon", "Pooled hit rates, Fisher"
    found = ("With {target}'s explanations participants picked the right panel {side} often than with "
             "{baseline}'s: {numbers}; primary analysis: {method}.")
    sides = ("more", "less")
    not_found = ("The data do not show that {target}'s explanations let participants pick the right panel "
                 "more often than {baseline}'s: {numbers}; primary analysis: {method}.")

    def power_arguments(self, args, kind, spec):
        from study.stimuli.wording_new_kinds import DISTINCTION_K
        k = args.k or (spec.kind_options.get("panels") if spec is not None else None) or DISTINCTION_K
        if k < 2:
            raise StudyError(f"--k {k}: a question needs at least 2 choices")
        params = {"k": k, "intercept": args.intercept if args.intercept is not None else 0.0,
                  "log_odds_ratio": args.log_odds_ratio, "participant_sd": args.participant_sd,
                  "item_sd": args.item_sd}
        return ({"params": params, "items_per_method": args.items, "alternative": args.alternative},
                {**params, "items_per_method": args.items})

    def frame(self, kept, kinds):
        return distinction_frame(kept, kinds)

    def tables_of(self, frame, target, baselines, options, common):
        return {"accuracy": accuracy_table(frame, ["method"], options.confidence),
                "by_prediction": accuracy_table(frame.assign(prediction=np.where(frame["model_right"], "correct",
                                                                                 "incorrect")),
                                                ["method", "prediction"], options.confidence),
                "participant": participant_level(frame, target, baselines, **common),
                "answer": answer_level(frame, target, baselines, **common)}

    def fit(self, frame, target, baselines, options, common):
        from study.analysis.logit_mixed import logit_mixed_primary
        m = logit_mixed_primary(frame, "hit", target=target, baselines=baselines, offset="offset",
                                alternative=options.alternative, confidence=options.confidence,
                                alpha=options.alpha)
        return dict(mixed=m["contrasts"], levels=m["levels"], model=m["model"], variance=m["variance"])

    def mixed_fields(self, r):
        return dict(estimate=r["odds_ratio"], ci_low=r["or_ci_low"], ci_high=r["or_ci_high"], statistic="Wald z",
                    value=r["z"])

    def null_estimate(self, primary):
        return 1.0 if primary == "clmm" else 0.0   # the clmm estimate is an odds ratio

    # --- preregistration -----------------------------------------------------------------------
    def default_hypotheses(self, spec, target, baselines, alternative):
        if not target:
            return []
        rel = HOW_OFTEN[alternative]
        return [f"With explanations of {target}, participants pick the right panel {rel} with those of {b} "
                f"(logistic mixed model with chance offset 1/k)." for b in baselines]

    def measured(self, spec):
        k, pick = spec.kind_options.get("panels", 4), spec.kind_options.get("pick", "predicted")
        what = "the model's predicted class" if pick == "predicted" else "the true class"
        return f"Pick of one of {k} evidence panels; correct when it is {what}'s (chance 1/{k})"


DISTINCTION = Distinction()
