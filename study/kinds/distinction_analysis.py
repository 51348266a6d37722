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

import time

import numpy as np
import pandas as pd

from study.analysis.corrections import holm
from study.errors import StudyError
from study.kinds.analyses import KindAnalysis

NAME = "hive_distinction"
EFFECTS = {"clmm": "odds ratio of picking the right panel",
           "participant": "mean difference of participant hit rates",
           "answer": "difference of pooled hit rates"}


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
    from study.analysis.participant_level import mean_difference_ci, wilcoxon_paired
    rates = frame.groupby(["participant", "method"])["hit"].mean().unstack()
    rows = []
    for b in baselines:
        both = rates[[target, b]].dropna() if target in rates and b in rates else pd.DataFrame()
        d = (both[target] - both[b]).to_numpy(dtype=float) if len(both) else np.array([])
        ci = mean_difference_ci(d, confidence)
        w = wilcoxon_paired(both[target], both[b], alternative) if len(both) else {}
        rows.append({"target": target, "baseline": b, "participants": len(d),
                     "mean_difference": float(d.mean()) if len(d) else np.nan,
                     "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "statistic": "Wilcoxon W",
                     "value": w.get("W", np.nan), "p_value": w.get("p_value", np.nan),
                     "alternative": alternative, "ci_level": confidence})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    return out


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
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    return out


def check_methods(frame: pd.DataFrame, options, res, what: str) -> tuple[str, list[str]]:
    methods = sorted(set(frame["method"]))
    if options.target is None:
        raise StudyError(f"the answers hold {what} answers: name the target method with --target "
                         f"(methods: {', '.join(methods)})")
    if options.target not in methods:
        raise StudyError(f"--target {options.target!r} is not a method in the {what} answers "
                         f"(methods: {', '.join(methods)})")
    baselines = list(options.baselines) if options.baselines else [m for m in methods if m != options.target]
    for b in baselines:
        if b not in methods or b == options.target:
            raise StudyError(f"baseline {b!r} is not a method in the {what} answers (methods: {', '.join(methods)})")
    if not res.baselines:
        res.baselines = baselines
    return options.target, baselines


def html_section(title: str, role_label: str, parts: list[tuple[str, pd.DataFrame]]) -> list[str]:
    from study.analysis.report import _table
    out = [f"<h3>{title}{role_label}</h3>"] if title else []
    return out + [_table(df, None, name) for name, df in parts if df is not None and len(df)]


class Distinction(KindAnalysis):
    """Picks among k evidence panels (distinction)."""
    name = NAME
    needs_target = True
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

    def run(self, kinds, kept, options, res):
        t0 = time.perf_counter()
        frame = distinction_frame(kept, kinds)
        if not len(frame):
            res.notes.append(f"Every {kinds[0]} answer was excluded; no {kinds[0]} analysis.")
            return False
        target, baselines = check_methods(frame, options, res, kinds[0])
        common = dict(alternative=options.alternative, alpha=options.alpha, confidence=options.confidence)
        t = {"kind": kinds[0], "target": target, "baselines": baselines,
             "accuracy": accuracy_table(frame, ["method"], options.confidence),
             "by_prediction": accuracy_table(frame.assign(prediction=np.where(frame["model_right"], "correct",
                                                                              "incorrect")),
                                             ["method", "prediction"], options.confidence),
             "participant": participant_level(frame, target, baselines, **common),
             "answer": answer_level(frame, target, baselines, **common)}
        if options.mixed:
            from study.analysis.logit_mixed import logit_mixed_primary
            try:
                m = logit_mixed_primary(frame, "hit", target=target, baselines=baselines, offset="offset",
                                        alternative=options.alternative, confidence=options.confidence,
                                        alpha=options.alpha)
            except StudyError as exc:
                if options.primary == "clmm":
                    raise StudyError(f"primary analysis (logistic mixed model) cannot be fitted: {exc}") from None
                res.notes.append(f"Secondary logistic mixed model not fitted: {exc}")
            else:
                t.update(mixed=m["contrasts"], levels=m["levels"], model=m["model"], variance=m["variance"])
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
                   "p_holm": r["p_holm"], "reject": bool(r["reject"])}
            if primary == "clmm":
                mod = t["model"].iloc[0]
                row.update(unit="answer in participant × item (mixed model)", estimate=r["odds_ratio"],
                           ci_low=r["or_ci_low"], ci_high=r["or_ci_high"], ci_method="Wald",
                           statistic="Wald z", value=r["z"], converged=bool(mod.get("converged", True)),
                           model=str(mod["model"]), n_answers=int(mod["answers"]),
                           n_participants=mod.get("levels_participant"), n_items=mod.get("levels_item"),
                           n=f"{int(mod['answers'])} answers, {mod.get('levels_participant', '?')} participants, "
                             f"{mod.get('levels_item', '?')} items", fit=str(mod["convergence"]))
            elif primary == "participant":
                row.update(unit="participant", estimate=r["mean_difference"], ci_low=r["ci_low"],
                           ci_high=r["ci_high"], ci_method="t", statistic=r["statistic"], value=r["value"],
                           n=f"{r['participants']} participants")
            else:
                row.update(unit="answer", estimate=r["difference"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                           ci_method="Wald", statistic=r["statistic"], value=r["value"], n=f"{r['n']} answers")
            rows.append(row)
        return rows

    def convergence(self, res):
        m = res.kind_tables.get(self.name, {}).get("model")
        if m is None or not len(m):
            return None, ""
        return bool(m["converged"].iloc[0]), str(m["convergence"].iloc[0]) if "convergence" in m else ""

    def sentences(self, res, rows):
        from study.analysis.sentence import _numbers
        converged, account = self.convergence(res) if res.options.primary == "clmm" else (None, "")
        null = 1.0 if res.options.primary == "clmm" else 0.0
        out = []
        for _, row in rows.iterrows():
            numbers = _numbers(row, "Holm-adjusted p" if len(rows) > 1 else "p")
            target, _, baseline = str(row["comparison"]).partition(" vs ")
            method = self.primaries[res.options.primary].split(";")[0].split(" (")[0]
            if converged is False:
                out.append(f"No conclusion: the primary {method} did not converge ({account}); its "
                           f"estimate for {target} vs {baseline} ({numbers}) must not be reported as a result.")
            elif bool(row["reject"]):
                side = "more" if row["estimate"] > null else "less"
                out.append(f"With {target}'s explanations participants picked the right panel {side} often "
                           f"than with {baseline}'s: {numbers}; primary analysis: {method}.")
            else:
                out.append(f"The data do not show that {target}'s explanations let participants pick the "
                           f"right panel more often than {baseline}'s: {numbers}; primary analysis: {method}.")
        return out

    # --- outputs -------------------------------------------------------------------------------
    def summary(self, res, role):
        from study.analysis.summary import records
        t = res.kind_tables[self.name]
        return {t["kind"]: {
            "target": t["target"], "baselines": t["baselines"],
            "test": "a correct pick among k panels, against chance 1/k",
            "mixed_model": None if "mixed" not in t else {"role": role("clmm"), "results": records(t["mixed"]),
                                                          "levels": records(t["levels"]),
                                                          "model": records(t["model"])},
            "participant_level": {"role": role("participant"), "results": records(t["participant"])},
            "answer_level": {"role": role("answer"), "results": records(t["answer"])},
            "accuracy": records(t["accuracy"]), "accuracy_by_prediction": records(t["by_prediction"])}}

    def tables(self, res):
        t = res.kind_tables[self.name]
        return {f"{t['kind']}_{k}": t[k] for k in ("mixed", "levels", "participant", "answer", "accuracy",
                                                   "by_prediction") if k in t}

    def report_sections(self, res, role):
        from study.analysis.report import section_label
        t = res.kind_tables[self.name]
        parts = html_section(f"HIVE distinction ({t['kind']})", "", [
            ("Accuracy per method (chance 1/k)", t["accuracy"]),
            ("Accuracy by the model's correct and incorrect predictions", t["by_prediction"])])
        if "mixed" in t:
            parts += html_section("Logistic mixed model", section_label(role("clmm"), "answer in participant × item"),
                                  [("Target vs baseline (log odds ratio)", t["mixed"]),
                                   ("Each method's log odds above chance", t["levels"])])
        parts += html_section("Participant level", section_label(role("participant"), "participant"),
                              [("Hit rates, Wilcoxon", t["participant"])])
        parts += html_section("Answer level", section_label(role("answer"), "answer"),
                              [("Pooled hit rates, Fisher", t["answer"])])
        return parts

    # --- preregistration -----------------------------------------------------------------------
    def default_hypotheses(self, spec, target, baselines, alternative):
        if not target:
            return []
        rel = {"greater": "more often than", "less": "less often than",
               "two-sided": "not as often as"}[alternative]
        return [f"With explanations of {target}, participants pick the right panel {rel} with those of {b} "
                f"(logistic mixed model with chance offset 1/k)." for b in baselines]

    def measured(self, spec):
        k, pick = spec.kind_options.get("panels", 4), spec.kind_options.get("pick", "predicted")
        what = "the model's predicted class" if pick == "predicted" else "the true class"
        return f"Pick of one of {k} evidence panels; correct when it is {what}'s (chance 1/{k})"

    def model_text(self, primary):
        return self.primaries[primary]


DISTINCTION = Distinction()
