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

import time

import numpy as np
import pandas as pd

from study.analysis.corrections import holm
from study.errors import StudyError
from study.kinds.analyses import KindAnalysis
from study.kinds.distinction_analysis import check_methods, html_section

NAME = "hive_agreement"
EFFECTS = {"clmm": "difference of gaps (log odds ratio, right - wrong predictions)",
           "participant": "mean difference of participant gaps (right - wrong)",
           "answer": "difference of pooled gaps (mean confidence, right - wrong)"}


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
    from study.analysis.participant_level import mean_difference_ci, wilcoxon_paired
    means = frame.groupby(["participant", "method", "correct"])["confidence"].mean().unstack()
    gap = (means.get(1) - means.get(0)).unstack() if 0 in means and 1 in means else pd.DataFrame()
    rows = []
    for b in baselines:
        both = gap[[target, b]].dropna() if target in gap and b in gap else pd.DataFrame(columns=[target, b])
        d = (both[target] - both[b]).to_numpy(dtype=float)
        ci = mean_difference_ci(d, confidence)
        w = wilcoxon_paired(both[target], both[b], alternative) if len(both) else {}
        rows.append({"target": target, "baseline": b, "participants": len(d),
                     "mean_difference": float(d.mean()) if len(d) else np.nan, "ci_low": ci["ci_low"],
                     "ci_high": ci["ci_high"], "statistic": "Wilcoxon W", "value": w.get("W", np.nan),
                     "p_value": w.get("p_value", np.nan), "alternative": alternative, "ci_level": confidence})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    return out


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
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    return out


class Agreement(KindAnalysis):
    """Confidence that a shown prediction is right, by correctness and method (agreement)."""
    name = NAME
    needs_target = True
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

    def run(self, kinds, kept, options, res):
        t0 = time.perf_counter()
        frame = agreement_frame(kept, kinds)
        if not len(frame):
            res.notes.append(f"Every {kinds[0]} answer was excluded; no {kinds[0]} analysis.")
            return False
        target, baselines = check_methods(frame, options, res, kinds[0])
        common = dict(alternative=options.alternative, alpha=options.alpha, confidence=options.confidence)
        t = {"kind": kinds[0], "target": target, "baselines": baselines,
             "means": means_table(frame, options.confidence),
             "participant": participant_gaps(frame, target, baselines, **common),
             "answer": pooled_gaps(frame, target, baselines, **common)}
        if options.mixed:
            from study.analysis.ordinal_design import clmm_interaction
            try:
                m = clmm_interaction(frame, target=target, baselines=baselines, scale=options.scale, **common)
            except StudyError as exc:
                if options.primary == "clmm":
                    raise StudyError(f"primary analysis (CLMM) cannot be fitted: {exc}") from None
                res.notes.append(f"Secondary CLMM not fitted: {exc}")
            else:
                t.update(mixed=m["interaction"], gaps=m["gaps"], lrt=m["lrt"], model=m["model"],
                         variance=m["variance"])
        res.kind_tables[self.name] = t
        res.seconds[self.name] = time.perf_counter() - t0
        return True

    def primary_rows(self, res):
        t = res.kind_tables.get(self.name, {})
        primary = res.options.primary
        table = {"clmm": t.get("mixed"), "participant": t.get("participant"), "answer": t.get("answer")}[primary]
        rows = []
        for r in ([] if table is None else table.to_dict(orient="records")):
            row = {"study": t["kind"], "comparison": f"{r['target']} vs {r['baseline']}",
                   "effect": EFFECTS[primary], "alternative": r["alternative"], "p_value": r["p_value"],
                   "p_holm": r["p_holm"], "reject": bool(r["reject"]), "ci_low": r["ci_low"],
                   "ci_high": r["ci_high"]}
            if primary == "clmm":
                mod = t["model"].iloc[0]
                row.update(unit="answer in participant × item (mixed model)", estimate=r["estimate"],
                           ci_method="Wald", statistic="LR chi2 (1 df, signed root)", value=r["lr_chi2"],
                           model=str(mod["model"]), converged=bool(mod["converged"]),
                           n_answers=int(mod["answers"]), n_participants=mod.get("levels_participant"),
                           n_items=mod.get("levels_item"), fit=str(mod["convergence"]),
                           n=f"{int(mod['answers'])} answers, {mod.get('levels_participant', '?')} participants, "
                             f"{mod.get('levels_item', '?')} items")
            elif primary == "participant":
                row.update(unit="participant", estimate=r["mean_difference"], ci_method="t",
                           statistic=r["statistic"], value=r["value"], n=f"{r['participants']} participants")
            else:
                row.update(unit="answer", estimate=r["difference"], ci_method="Wald", statistic=r["statistic"],
                           value=r["value"], n=f"{r['n']} answers")
            rows.append(row)
        return rows

    def convergence(self, res):
        m = res.kind_tables.get(self.name, {}).get("model")
        if m is None or not len(m):
            return None, ""
        return bool(m["converged"].iloc[0]), str(m["convergence"].iloc[0])

    def sentences(self, res, rows):
        from study.analysis.sentence import _numbers
        converged, account = self.convergence(res) if res.options.primary == "clmm" else (None, "")
        method = self.primaries[res.options.primary].split(";")[0].split(" (")[0]
        out = []
        for _, row in rows.iterrows():
            numbers = _numbers(row, "Holm-adjusted p" if len(rows) > 1 else "p")
            target, _, baseline = str(row["comparison"]).partition(" vs ")
            if converged is False:
                out.append(f"No conclusion: the primary {method} did not converge ({account}); its estimate "
                           f"for {target} vs {baseline} ({numbers}) must not be reported as a result.")
            elif bool(row["reject"]):
                side = "better" if row["estimate"] > 0 else "worse"
                out.append(f"With {target}'s explanations participants told right from wrong predictions "
                           f"{side} than with {baseline}'s: {numbers}; primary analysis: {method}.")
            else:
                out.append(f"The data do not show that {target}'s explanations let participants tell right "
                           f"from wrong predictions better than {baseline}'s: {numbers}; primary analysis: "
                           f"{method}.")
        return out

    # --- outputs -------------------------------------------------------------------------------
    def summary(self, res, role):
        from study.analysis.summary import records
        t = res.kind_tables[self.name]
        return {t["kind"]: {
            "target": t["target"], "baselines": t["baselines"],
            "test": "confidence ~ prediction correctness x method: the right-wrong gap, target vs baseline",
            "mixed_model": None if "mixed" not in t else {
                "role": role("clmm"), "results": records(t["mixed"]), "gaps": records(t["gaps"]),
                "interaction_lrt": records(t["lrt"]), "model": records(t["model"])},
            "participant_level": {"role": role("participant"), "results": records(t["participant"])},
            "answer_level": {"role": role("answer"), "results": records(t["answer"])},
            "means": records(t["means"])}}

    def tables(self, res):
        t = res.kind_tables[self.name]
        return {f"{t['kind']}_{k}": t[k] for k in ("mixed", "gaps", "lrt", "participant", "answer", "means")
                if k in t}

    def report_sections(self, res, role):
        from study.analysis.report import section_label
        t = res.kind_tables[self.name]
        parts = html_section(f"HIVE agreement ({t['kind']})", "", [
            ("Mean confidence by method and prediction correctness", t["means"])])
        if "mixed" in t:
            parts += html_section("Cumulative link mixed model",
                                  section_label(role("clmm"), "answer in participant × item"),
                                  [("Interaction: gap of the target - gap of the baseline", t["mixed"]),
                                   ("Each method's gap (log odds ratio, right - wrong)", t["gaps"]),
                                   ("Interaction as a whole", t["lrt"])])
        parts += html_section("Participant level", section_label(role("participant"), "participant"),
                              [("Participant gaps, Wilcoxon", t["participant"])])
        parts += html_section("Answer level", section_label(role("answer"), "answer"),
                              [("Pooled gaps", t["answer"])])
        return parts

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

    def model_text(self, primary):
        return self.primaries[primary]


AGREEMENT = Agreement()
