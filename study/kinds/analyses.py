"""What each question kind's answers are analysed with: the declared primary (one of the
primary analyses of study.analysis.plan.PRIMARY_ANALYSES, in their fallback order), the
secondaries, the rows of the primary table, the report sentences and the prereg text.

A kind points at one of these objects (`QuestionKind.analysis()`); kinds that share an
analysis (saliency and likert: ratings of one method's map) share the object, and the
pipeline runs each object once with the kinds of the file that use it. Because every
registered kind declares its analysis, `analyze` cannot meet a kind it does not analyse.
"""
from __future__ import annotations

from study.analysis.plan import PRIMARIES
from study.errors import StudyError

# a hypothesis about how often a choice is made, by the test's alternative (pairwise, distinction)
HOW_OFTEN = {"greater": "more often than", "less": "less often than", "two-sided": "not as often as"}


class KindAnalysis:
    name: str
    # primary analysis name -> what it is for this kind (prereg and report wording)
    primaries: dict[str, str]
    secondaries: tuple[str, ...] = ()
    needs_target: bool = False

    def run(self, kinds: list[str], kept, options, res) -> bool:
        """Fill `res` from the answers of `kinds`; False when every answer was excluded."""
        raise NotImplementedError

    def primary_rows(self, res) -> list[dict]:
        raise NotImplementedError

    def convergence(self, res) -> tuple[bool | None, str]:
        """Whether the primary mixed model converged, and its one-line account (None: no model)."""
        return None, ""

    def sentences(self, res, rows) -> list[str]:
        from study.analysis.sentence import row_sentence
        converged, account = self.convergence(res) if PRIMARIES[res.options.primary].mixed else (None, "")
        return [row_sentence(row, primary=res.options.primary, converged=converged, convergence=account,
                             several=len(rows) > 1) for _, row in rows.iterrows()]

    # --- outputs (summary.json, tables/*.csv, report.html) ------------------------------
    # ratings and consistency are written by study/analysis/summary.py, output.py and
    # report.py (older code); an analysis added since brings its own through these hooks
    def summary(self, res, role) -> dict:
        """{summary.json key: section} (`role(name)` -> "primary" | "secondary")."""
        return {}

    def tables(self, res) -> dict:
        """{table name: DataFrame} written to tables/NAME.csv."""
        return {}

    def report_sections(self, res, role) -> list[str]:
        """HTML fragments of the report (escaped; study.analysis.report helpers)."""
        return []

    # --- preregistration (study/analysis/prereg.py) ---------------------------------
    def default_hypotheses(self, spec, target: str | None, baselines: list[str],
                           alternative: str) -> list[str]:
        """The hypotheses the prereg states when the spec's analysis.hypotheses is empty."""
        return []

    def measured(self, spec) -> str:
        """The measured variable, in words."""
        raise NotImplementedError

    def model_text(self, primary: str) -> str:
        """A primary analysis (name of study.analysis.plan.PRIMARIES) in words, for the prereg."""
        from study.analysis.plan import PRIMARY_LABELS
        return PRIMARY_LABELS[primary]

    def extra_secondaries(self, spec) -> list[str]:
        """Secondary analyses beyond the other primaries (e.g. Bradley-Terry), for the prereg."""
        return []

    # --- power (study/analysis/power.py; `python -m study power`) ---------------------
    power_simulation: str = ""   # the function simulating the primary's power (module.function)
    power_test: str = ""         # the simulated test in words (printed with the plan)
    rating_structures: bool = False  # the prereg lists the ratings CLMM's random-effects structures

    def power_arguments(self, args, kind, spec) -> tuple[dict, dict]:
        """(keyword arguments of `power_simulation` besides n, sims, alpha and seed, the
        parameters printed and written with the plan) from the `python -m study power`
        options (already defaulted: log_odds_ratio, items, participant_sd, item_sd)."""
        raise NotImplementedError

    def power_plan(self, args, plan_decl, kind, spec) -> int:
        """Run `python -m study power` for `kind` (default: simulate assumed parameters)."""
        from study.analysis.power_cli import simulated_plan
        return simulated_plan(args, plan_decl, kind, spec)


class Ratings(KindAnalysis):
    """Ratings of one method's map (saliency, likert)."""
    name = "ratings"
    needs_target = True
    rating_structures = True
    primaries = {
        "clmm": "cumulative link mixed model of ratings (maximal random effects, declared fallback "
                "to uncorrelated slopes, then crossed intercepts), likelihood-ratio test of each "
                "target-baseline contrast, Holm",
        "participant": "Wilcoxon signed-rank test of participant mean ratings (Holm)",
        "answer": "Mann-Whitney U of pooled ratings (Holm)",
    }
    secondaries = ("answer level: Mann-Whitney U per baseline and data set",
                   "participant level: Wilcoxon signed-rank, Friedman",
                   "cumulative link mixed model", "agreement: Krippendorff's ordinal alpha")

    def run(self, kinds, kept, options, res):
        from study.analysis.pipeline import rating_analysis
        if len(kinds) > 1:
            raise StudyError(f"the answers hold ratings of {len(kinds)} question kinds "
                             f"({', '.join(kinds)}): analyse each kind's answers on its own")
        res.rating_kind = kinds[0]
        return rating_analysis(kinds[0], kept, options, res)

    def primary_rows(self, res):
        from study.analysis.primary import rating_rows
        return rating_rows(res)

    def convergence(self, res):
        if res.clmm is None:
            return None, ""
        conv = res.clmm["convergence"].iloc[0]
        return bool(conv["converged"]), str(conv.get("summary", ""))

    power_simulation = "study.analysis.power.simulate_power_clmm"

    def power_plan(self, args, plan_decl, kind, spec):
        from study.analysis.power_cli import ratings_plan
        return ratings_plan(args, plan_decl, kind, spec)

    def default_hypotheses(self, spec, target, baselines, alternative):
        if not target:
            return []
        rel = {"greater": "higher than", "less": "lower than", "two-sided": "differently from"}[alternative]
        return [f"Explanations of {target} are rated {rel} those of {b}." for b in baselines]

    def measured(self, spec):
        return "Rating on a 1–" + str(spec.wording["scale"]["points"]) + " scale"


class Consistency(KindAnalysis):
    """Choices between the declared pair sources (consistency)."""
    name = "consistency"
    primaries = {
        "clmm": "logistic mixed model of consistency choices (crossed participant and pair "
                "intercepts, likelihood-ratio test; parametric bootstrap below 10 participants or pairs)",
        "participant": "Wilcoxon test of participant proportions against 1/2",
        "answer": "binomial test of pooled choices against 1/2",
    }
    secondaries = ("per-version binomial tests", "participant proportions", "logistic mixed model",
                   "agreement: Krippendorff's nominal alpha")

    def run(self, kinds, kept, options, res):
        from study.analysis.pipeline import consistency_analysis
        return consistency_analysis(kinds, kept, options, res)

    def primary_rows(self, res):
        from study.analysis.primary import _consistency_rows
        return _consistency_rows(res)

    def default_hypotheses(self, spec, target, baselines, alternative):
        from study.spec import DEFAULT_SOURCES
        if tuple(spec.sources) != DEFAULT_SOURCES:
            return [f"Participants do not choose the {len(spec.sources)} pair sources "
                    f"({', '.join(spec.sources)}) equally often when two are compared "
                    "(null: no source preferred; two-sided)."]
        return ["Participants prefer one pair source (data-dependent or Euclidean "
                "similarity) more often than the other (two-sided, against 1/2)."]

    # the participant-level test of shares against 1/2 with participant and item intercepts
    power_simulation = "study.analysis.power.simulate_power_pairwise"
    power_test = "Wilcoxon signed-rank of participant shares against 1/2"

    def power_arguments(self, args, kind, spec):
        return _share_arguments(args)

    def measured(self, spec):
        return "Choice between two pair sets (or undecided)"

    def convergence(self, res):
        multi = res.consistency_multi
        if multi is not None and "model" in multi:
            r = multi["model"].iloc[0]
            return bool(r["converged"]), str(r["convergence"])
        t = res.consistency_mixed
        if t is not None:
            from study.analysis.consistency import POOLED_VERSION
            row = t[t["version"] == POOLED_VERSION]
            if len(row) and "converged" in row:
                return bool(row["converged"].iloc[0]), str(row["convergence"].iloc[0]) if "convergence" in row else ""
        return None, ""

    def sentences(self, res, rows):
        from study.analysis.sentence import multi_sentence, row_sentence
        converged, account = self.convergence(res) if PRIMARIES[res.options.primary].mixed else (None, "")
        if len(rows) and rows["effect"].iloc[0] == "no source preferred":
            return [multi_sentence(rows, primary=res.options.primary, converged=converged,
                                   convergence=account)]
        return [row_sentence(row, primary=res.options.primary, converged=converged, convergence=account,
                             several=len(rows) > 1) for _, row in rows.iterrows()]


class Pairwise(KindAnalysis):
    """Choices between two methods' maps of one image (pairwise)."""
    name = "pairwise"
    needs_target = True
    primaries = {
        "clmm": "logistic mixed model of the share of choices for the target method (participant "
                "and item random intercepts), likelihood-ratio test against 1/2, Holm",
        "participant": "Wilcoxon signed-rank test of participant shares of target choices against 1/2 (Holm)",
        "answer": "binomial test of pooled target choices against 1/2 (Holm)",
    }
    secondaries = ("participant level: shares of target choices", "answer level: binomial tests",
                   "more than two methods: Bradley-Terry worth of every method",
                   "agreement: Krippendorff's nominal alpha")

    def run(self, kinds, kept, options, res):
        from study.analysis.pairwise import pairwise_analysis
        return pairwise_analysis(kinds, kept, options, res)

    def primary_rows(self, res):
        from study.analysis.pairwise import pairwise_rows
        return pairwise_rows(res)

    def sentences(self, res, rows):
        from study.analysis.pairwise import choice_sentence
        converged, account = self.convergence(res) if PRIMARIES[res.options.primary].mixed else (None, "")
        return [choice_sentence(row, primary=res.options.primary, converged=converged, convergence=account,
                                several=len(rows) > 1) for _, row in rows.iterrows()]

    power_simulation = "study.analysis.power.simulate_power_pairwise"
    power_test = "Wilcoxon signed-rank of participant shares of target choices against 1/2"

    def power_arguments(self, args, kind, spec):
        return _share_arguments(args)

    def summary(self, res, role):
        from study.analysis.summary import records
        t = res.pairwise
        return {t["kind"]: {
            "target": t["target"], "baselines": t["baselines"], "methods": t["methods"],
            "test": "share of choices for the target among decided answers, against 1/2",
            "counts": records(t["counts"]),
            "mixed_model": None if "mixed" not in t else {"role": role("clmm"), "results": records(t["mixed"])},
            "participant_level": {"role": role("participant"), "results": records(t["participant"])},
            "answer_level": {"role": role("answer"), "results": records(t["answer"])},
            "bradley_terry": records(t.get("bradley_terry")),
        }}

    def tables(self, res):
        t = res.pairwise
        return {f"{t['kind']}_{k}": t[k] for k in ("counts", "mixed", "participant", "answer", "bradley_terry")
                if k in t}

    def report_sections(self, res, role):
        from study.analysis.pairwise import pairwise_section
        return pairwise_section(res, role)

    def convergence(self, res):
        t = (res.pairwise or {}).get("mixed")
        if t is None or not len(t):
            return None, ""
        return bool(t["converged"].all()), "; ".join(dict.fromkeys(t["convergence"].astype(str)))

    def default_hypotheses(self, spec, target, baselines, alternative):
        if not target:
            return []
        rel = HOW_OFTEN[alternative]
        return [f"Participants choose the map of {target} {rel} that of {b} "
                f"(decided answers; null: 1/2)." for b in baselines]

    def measured(self, spec):
        return "Choice between two methods' maps of the same image (or undecided)"

    def model_text(self, primary):
        return self.primaries[primary]

    def extra_secondaries(self, spec):
        if len(spec.methods) <= 2:
            return []
        return ["Bradley-Terry model of every method's worth from all decided choices "
                "(study/analysis/bradley_terry.py), Wald intervals, likelihood-ratio test of equal worth"]


def _share_arguments(args) -> tuple[dict, dict]:
    """Choices between two options: log odds of choosing the first (target), decided
    choices per participant, participant and item intercepts."""
    kw = {"log_odds": args.log_odds_ratio, "choices_per_participant": args.items,
          "participant_sd": args.participant_sd, "item_sd": args.item_sd}
    return kw, {"log_odds_ratio": args.log_odds_ratio, "choices_per_participant": args.items,
                "participant_sd": args.participant_sd, "item_sd": args.item_sd}


RATINGS = Ratings()
CONSISTENCY = Consistency()
PAIRWISE = Pairwise()

