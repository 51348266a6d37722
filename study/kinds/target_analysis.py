"""What the analyses of HIVE's kinds (distinction, agreement) share: a target method against
each baseline by a mixed model (the declared primary `clmm`), a participant-level Wilcoxon
signed-rank test and an answer-level test, all Holm-adjusted, plus the kind's descriptive
tables; and the way these become primary-table rows, report sentences, summary.json
sections, tables/*.csv and report sections.

A kind's analysis subclasses `TargetAnalysis`: it builds its frame (`frame`), its
descriptive and participant/answer tables (`tables_of`), fits its mixed model (`fit`), maps
a mixed-model row to primary-table fields (`mixed_fields`), and declares its wording and
table layout as class attributes (`Part`s: table key, summary.json key, report caption).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from study.analysis.comparisons import check_target
from study.analysis.corrections import holm_table
from study.errors import StudyError
from study.kinds.analyses import KindAnalysis


@dataclass(frozen=True)
class Part:
    """One table of a kind's analysis: its key (tables/KIND_KEY.csv), its summary.json key
    and its caption in the report."""
    table: str
    summary: str
    caption: str


def paired_wilcoxon(wide: pd.DataFrame, target: str, baselines: list[str], *, alternative: str, alpha: float,
                    confidence: float) -> pd.DataFrame:
    """Participant level: `wide` holds one value per participant (rows) and method (columns);
    target - baseline differences of the participants who have both, their mean with a t
    interval, and the Wilcoxon signed-rank test, Holm over the baselines."""
    from study.analysis.participant_level import mean_difference_ci, wilcoxon_paired
    rows = []
    for b in baselines:
        both = wide[[target, b]].dropna() if target in wide and b in wide else pd.DataFrame(columns=[target, b])
        d = (both[target] - both[b]).to_numpy(dtype=float)
        ci = mean_difference_ci(d, confidence)
        w = wilcoxon_paired(both[target], both[b], alternative) if len(both) else {}
        rows.append({"target": target, "baseline": b, "participants": len(d),
                     "mean_difference": float(d.mean()) if len(d) else np.nan,
                     "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "statistic": "Wilcoxon W",
                     "value": w.get("W", np.nan), "p_value": w.get("p_value", np.nan),
                     "alternative": alternative, "ci_level": confidence})
    return holm_table(rows, alpha)


def html_section(title: str, role_label: str, parts: list[tuple[str, pd.DataFrame]]) -> list[str]:
    from study.analysis.report import _table
    out = [f"<h3>{title}{role_label}</h3>"] if title else []
    return out + [_table(df, None, name) for name, df in parts if df is not None and len(df)]


class TargetAnalysis(KindAnalysis):
    """A target method against each baseline: mixed model, participant and answer level."""
    needs_target = True
    effects: dict[str, str]          # primary -> the effect in the primary table
    title: str                       # report heading, before " (KIND)"
    test: str                        # summary.json "test"
    model_name: str                  # the mixed model in errors and notes
    mixed_title: str                 # its report heading
    mixed_caption: str               # caption of its target-baseline contrasts (table "mixed")
    mixed_parts: tuple[Part, ...]    # its other tables (the summary also holds "model")
    describe: tuple[Part, ...]       # descriptive tables, first in the report, last in the summary
    participant_caption: str
    answer_caption: str
    # the report sentences ({target}, {baseline}, {numbers}, {method}; {side}: sides[0] when
    # the estimate is above `null_estimate`, else sides[1])
    found: str
    sides: tuple[str, str]
    not_found: str

    # --- what each kind brings ------------------------------------------------------------------
    def frame(self, kept: pd.DataFrame, kinds: list[str]) -> pd.DataFrame:
        raise NotImplementedError

    def tables_of(self, frame, target, baselines, options, common) -> dict:
        """The descriptive tables and the "participant" and "answer" tables."""
        raise NotImplementedError

    def fit(self, frame, target, baselines, options, common) -> dict:
        """The mixed model's tables ("mixed", the mixed parts, "model", ...); StudyError when
        it cannot be fitted."""
        raise NotImplementedError

    def mixed_fields(self, r: dict) -> dict:
        """Primary-table fields of a mixed-model contrast row `r`: estimate, ci_low, ci_high,
        statistic, value."""
        raise NotImplementedError

    def null_estimate(self, primary: str) -> float:
        return 0.0

    # --- shared ----------------------------------------------------------------------------------
    def run(self, kinds, kept, options, res):
        t0 = time.perf_counter()
        frame = self.frame(kept, kinds)
        if not len(frame):
            res.notes.append(f"Every {kinds[0]} answer was excluded; no {kinds[0]} analysis.")
            return False
        target, baselines = check_target(sorted(set(frame["method"])), options, res, kinds[0])
        common = dict(alternative=options.alternative, alpha=options.alpha, confidence=options.confidence)
        t = {"kind": kinds[0], "target": target, "baselines": baselines,
             **self.tables_of(frame, target, baselines, options, common)}
        if options.mixed:
            try:
                t.update(self.fit(frame, target, baselines, options, common))
            except StudyError as exc:
                if options.primary == "clmm":
                    raise StudyError(f"primary analysis ({self.model_name}) cannot be fitted: {exc}") from None
                res.notes.append(f"Secondary {self.model_name} not fitted: {exc}")
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
                   "effect": self.effects[primary], "alternative": r["alternative"], "p_value": r["p_value"],
                   "p_holm": r["p_holm"], "reject": bool(r["reject"])}
            if primary == "clmm":
                mod = t["model"].iloc[0]
                row.update(unit="answer in participant × item (mixed model)", ci_method="Wald",
                           **self.mixed_fields(r), converged=bool(mod["converged"]), model=str(mod["model"]),
                           n_answers=int(mod["answers"]),
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
        return bool(m["converged"].iloc[0]), str(m["convergence"].iloc[0])

    def sentences(self, res, rows):
        from study.analysis.sentence import _numbers
        converged, account = self.convergence(res) if res.options.primary == "clmm" else (None, "")
        method = self.primaries[res.options.primary].split(";")[0].split(" (")[0]
        null = self.null_estimate(res.options.primary)
        out = []
        for _, row in rows.iterrows():
            numbers = _numbers(row, "Holm-adjusted p" if len(rows) > 1 else "p")
            target, _, baseline = str(row["comparison"]).partition(" vs ")
            words = dict(target=target, baseline=baseline, numbers=numbers, method=method)
            if converged is False:
                out.append(f"No conclusion: the primary {method} did not converge ({account}); its estimate "
                           f"for {target} vs {baseline} ({numbers}) must not be reported as a result.")
            elif bool(row["reject"]):
                side = self.sides[0] if row["estimate"] > null else self.sides[1]
                out.append(self.found.format(side=side, **words))
            else:
                out.append(self.not_found.format(**words))
        return out

    # --- outputs -----------------------------------------------------------------------------------
    def summary(self, res, role):
        from study.analysis.summary import records
        t = res.kind_tables[self.name]
        return {t["kind"]: {
            "target": t["target"], "baselines": t["baselines"], "test": self.test,
            "mixed_model": None if "mixed" not in t else {
                "role": role("clmm"), "results": records(t["mixed"]),
                **{p.summary: records(t[p.table]) for p in self.mixed_parts}, "model": records(t["model"])},
            "participant_level": {"role": role("participant"), "results": records(t["participant"])},
            "answer_level": {"role": role("answer"), "results": records(t["answer"])},
            **{p.summary: records(t[p.table]) for p in self.describe}}}

    def tables(self, res):
        t = res.kind_tables[self.name]
        keys = ("mixed", *(p.table for p in self.mixed_parts), "participant", "answer",
                *(p.table for p in self.describe))
        return {f"{t['kind']}_{k}": t[k] for k in keys if k in t}

    def report_sections(self, res, role):
        from study.analysis.report import section_label
        t = res.kind_tables[self.name]
        parts = html_section(f"{self.title} ({t['kind']})", "", [(p.caption, t[p.table]) for p in self.describe])
        if "mixed" in t:
            parts += html_section(self.mixed_title, section_label(role("clmm"), "answer in participant × item"),
                                  [(self.mixed_caption, t["mixed"]),
                                   *((p.caption, t[p.table]) for p in self.mixed_parts)])
        parts += html_section("Participant level", section_label(role("participant"), "participant"),
                              [(self.participant_caption, t["participant"])])
        parts += html_section("Answer level", section_label(role("answer"), "answer"),
                              [(self.answer_caption, t["answer"])])
        return parts

    def model_text(self, primary):
        return self.primaries[primary]
