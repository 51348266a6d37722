"""Analysis of HIVE's agreement task (question kind `hive_agreement`), reached only through
`AGREEMENT` (study/kinds/agreement.py declares it).

Each answer is a confidence (1..points) that the model's prediction is right; the item's
`condition` says whether it was (`model=right|wrong`). For each method the *gap* is how much
more confident participants are in right than in wrong predictions.
- Declared primary (`clmm`): CLMM confidence ~ correct * method + (1 | participant) +
  (1 | item) (study/analysis/ordinal_design.clmm_interaction; R: ordinal::clmm), the
  interaction contrast gap[target] - gap[baseline] by likelihood ratio (signed root), Holm.
- `participant`: each participant's gap (mean confidence right - wrong) per method, Wilcoxon
  signed-rank target vs baseline, Holm.
- `answer`: difference of the pooled gaps (mean confidences), Wald z, Holm.
- Secondaries: mean confidence per method and correctness (HIVE: explanations raise
  confidence even in wrong predictions), and each method's gap in the CLMM.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.errors import StudyError
from study.analysis.corrections import holm_table
from study.kinds.target_analysis import Part, TargetAnalysis, paired_wilcoxon

NAME = "hive_agreement"


def agreement_frame(answers: pd.DataFrame, kinds: list[str]) -> pd.DataFrame:
    rows = answers[answers["kind"].isin(kinds)]
    cond = rows["condition"].astype(str)
    bad = ~cond.isin(["model=right", "model=wrong"])
    if bad.any():
        i = int(rows.index[int(np.flatnonzero(bad.to_numpy())[0])])
        raise StudyError(f"answers row {i + 2}: column 'condition': agreement rows need 'model=right' or "
                         f"'model=wrong' (use the unblinded export), got {cond[bad].iloc[0]!r}")
    return pd.DataFrame({"participant": rows["participant_id"].astype(str).to_numpy(),
                         "item": rows["item_id"].astype(str).to_numpy(),
                         "method": rows["method"].astype(str).to_numpy(),
                         "confidence": rows["score"].to_numpy().astype(int),
                         "correct": (cond == "model=right").to_numpy().astype(int)})


def means_table(frame: pd.DataFrame, confidence: float) -> pd.DataFrame:
    from scipy import stats
    rows = []
    for (m, c), sub in frame.groupby(["method", "correct"], sort=True):
        x = sub["confidence"].to_numpy(dtype=float)
        half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
        rows.append({"method": m, "prediction": "correct" if c else "incorrect", "answers": len(x),
                     "mean_confidence": x.mean(), "ci_low": x.mean() - half, "ci_high": x.mean() + half,
                     "share_confident_right": float((x > (frame["confidence"].max() + 1) / 2).mean()),
                     "ci_level": confidence})
    return pd.DataFrame(rows)


def participant_gaps(frame, target, baselines, *, alternative, alpha, confidence) -> pd.DataFrame:
    means = frame.groupby(["participant", "method", "correct"])["confidence"].mean().unstack()
    gap = (means.get(1) - means.get(0)).unstack() if 0 in means and 1 in means else pd.DataFrame()
    return paired_wilcoxon(gap, target, baselines, alternative=alternative, alpha=alpha, confidence=confidence)


def pooled_gaps(frame, target, baselines, *, alternative, alpha, confidence) -> pd.DataFrame:
    from study.analysis.logit_mixed import p_value
    from scipy import stats

    def gap(m):
        sub = frame[frame["method"] == m]
        a, b = sub[sub["correct"] == 1]["confidence"], sub[sub["correct"] == 0]["confidence"]
        return a.mean() - b.mean(), a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b), len(sub)

    z_q = stats.norm.ppf(0.5 + confidence / 2)
    gt, vt, nt = gap(target)
    rows = []
    for b in baselines:
        gb, vb, nb = gap(b)
        est, se = gt - gb, float(np.sqrt(vt + vb))
        z = est / se if se > 0 else np.nan
        rows.append({"target": target, "baseline": b, "gap_target": gt, "gap_baseline": gb, "difference": est,
                     "ci_low": est - z_q * se, "ci_high": est + z_q * se, "statistic": "Wald z", "value": z,
                     "n": nt + nb, "p_value": float(p_value(z, alternative)), "alternative": alternative,
                     "ci_level": confidence})
    return holm_table(rows, alpha)


class Agreement(TargetAnalysis):
    """Confidence that a shown prediction is right, by correctness and method (agreement)."""
    name = NAME
    primaries = {
        "clmm": "cumulative link mixed model of confidence on prediction correctness x method (participant "
                "and item random intercepts); likelihood-ratio test of each target-baseline interaction "
                "contrast (the difference of the right-wrong gaps), Holm",
        "participant": "Wilcoxon signed-rank test of participant gaps (mean confidence right - wrong), "
                       "target vs each baseline (Holm)",
        "answer": "Wald test of the difference of pooled gaps (mean confidence right - wrong), Holm",
    }
    secondaries = ("mean confidence per method and prediction correctness",
                   "each method's gap between right and wrong predictions (CLMM)",
                   "participant level: Wilcoxon signed-rank of gaps", "answer level: pooled gaps",
                   "agreement: Krippendorff's ordinal alpha")
    power_simulation = "study.analysis.power_mixed.simulate_power_clmm_interaction"
    power_test = "CLMM likelihood ratio of the correctness x method interaction"
    effects = {"clmm": "difference of gaps (log odds ratio, right - wrong predictions)",
               "participant": "mean difference of participant gaps (right - wrong)",
               "answer": "difference of pooled gaps (mean confidence, right - wrong)"}
    title = "HIVE agreement"
    test = "confidence ~ prediction correctness x method: the right-wrong gap, target vs baseline"
    model_name, mixed_title = "CLMM", "Cumulative link mixed model"
    mixed_caption = "Interaction: gap of the target - gap of the baseline"
    mixed_parts = (Part("gaps", "gaps", "Each method's gap (log odds ratio, right - wrong)"),
                   Part("lrt", "interaction_lrt", "Interaction as a whole"))
    describe = (Part("means", "means", "Mean confidence by method and prediction correctness"),)
    participant_caption, answer_caption = "Participant gaps, Wilcoxon", "Pooled gaps"
    found = ("With {target}'s explanations participants told right from wrong predictions {side} than with "
             "{baseline}'s: {numbers}; primary analysis: {method}.")
    sides = ("better", "worse")
    not_found = ("The data do not show that {target}'s explanations let participants tell right from wrong "
                 "predictions better than {baseline}'s: {numbers}; primary analysis: {method}.")

    def power_arguments(self, args, kind, spec):
        points = int((spec.wording if spec is not None else kind.wording)["scale"]["points"])
        share = args.p_correct if args.p_correct is not None else 0.5
        if not 0 < share < 1:
            raise StudyError(f"--p-correct {share}: must be in (0, 1)")
        from scipy.special import logit
        params = {"thresholds": [float(t) for t in logit(np.arange(1, points) / points)],
                  "gap_baseline": args.gap if args.gap is not None else 1.0,
                  "interaction": args.log_odds_ratio, "p_correct": share,
                  "participant_sd": args.participant_sd, "item_sd": args.item_sd}
        reported = {k: v for k, v in params.items() if k != "thresholds"}
        return ({"params": params, "items_per_method": args.items, "alternative": args.alternative},
                {**reported, "items_per_method": args.items})

    def frame(self, kept, kinds):
        return agreement_frame(kept, kinds)

    def tables_of(self, frame, target, baselines, options, common):
        return {"means": means_table(frame, options.confidence),
                "participant": participant_gaps(frame, target, baselines, **common),
                "answer": pooled_gaps(frame, target, baselines, **common)}

    def fit(self, frame, target, baselines, options, common):
        from study.analysis.ordinal_design import clmm_interaction
        m = clmm_interaction(frame, target=target, baselines=baselines, scale=options.scale, **common)
        return dict(mixed=m["interaction"], gaps=m["gaps"], lrt=m["lrt"], model=m["model"], variance=m["variance"])

    def mixed_fields(self, r):
        return dict(estimate=r["estimate"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                    statistic="LR chi2 (1 df, signed root)", value=r["lr_chi2"])

    # --- preregistration -----------------------------------------------------------------------
    def default_hypotheses(self, spec, target, baselines, alternative):
        if not target:
            return []
        rel = {"greater": "larger than", "less": "smaller than", "two-sided": "different from"}[alternative]
        return [f"With explanations of {target}, the gap in confidence between the model's right and wrong "
                f"predictions is {rel} with those of {b} (CLMM interaction correctness x method)."
                for b in baselines]

    def measured(self, spec):
        return ("Confidence that the model's prediction is right, on a 1–"
                f"{spec.wording['scale']['points']} scale, for right and wrong predictions")


AGREEMENT = Agreement()
