"""The whole analysis in memory: answers in, every table of the report out.

Why separate from writing: the app, the CLI and the tests all want the same numbers;
only the CLI writes files (output.py). Nothing here touches the disk except reading
the answers file.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from study.analysis.agreement import agreement_table
from study.analysis.comparisons import check_methods, compare_to_target
from study.analysis.consistency import (consistency_counts, consistency_participant_tests,
                                        consistency_tests)
from study.analysis.exclusions import ExclusionRules, apply_exclusions
from study.analysis.io import SCALE, load_answers
from study.analysis.mannwhitney import ALTERNATIVES, METHODS
from study.analysis.participant_level import participant_tests
from study.analysis.plan import PRIMARIES, PRIMARY_ANALYSES
from study.analysis.ratings import CountCube, count_cube, counts_table, describe_ratings
from study.errors import StudyError


@dataclass(frozen=True)
class AnalysisOptions:
    """Everything that changes the numbers; recorded in the summary JSON."""

    target: str | None = None
    baselines: tuple[str, ...] | None = None
    alternative: str = "greater"
    mw_method: str = "asymptotic"
    continuity: bool = True
    confidence: float = 0.95
    alpha: float = 0.05
    bootstrap: int = 0
    n_resamples: int = 10_000
    seed: int = 0
    rules: ExclusionRules = ExclusionRules()
    scale: tuple[int, ...] = SCALE
    primary: str = "clmm"            # the declared primary analysis (study.analysis.plan)
    mixed: bool = True               # fit the mixed models (required when primary is clmm)
    agreement_resamples: int = 1000  # bootstrap resamples of Krippendorff's alpha (0: no CI)
    clmm_bootstrap: int = 0          # parametric-bootstrap draws for the CLMM contrasts (0: chi2)
    sources: tuple[str, ...] | None = None  # declared consistency pair sources (None: the two)

    def __post_init__(self) -> None:
        if self.primary not in PRIMARY_ANALYSES:
            raise StudyError(f"primary analysis {self.primary!r} is not one of "
                             f"{', '.join(PRIMARY_ANALYSES)}")
        if PRIMARIES[self.primary].mixed and not self.mixed:
            raise StudyError(f"the primary analysis is {self.primary}: the mixed models cannot be turned off")
        if self.agreement_resamples < 0:
            raise StudyError("agreement_resamples must be >= 0")
        if self.clmm_bootstrap < 0:
            raise StudyError("clmm_bootstrap must be >= 0")
        if self.alternative not in ALTERNATIVES:
            raise StudyError(f"alternative {self.alternative!r} is not one of {', '.join(ALTERNATIVES)}")
        if self.mw_method not in METHODS:
            raise StudyError(f"Mann-Whitney method {self.mw_method!r} is not one of {', '.join(METHODS)}")
        if not 0 < self.confidence < 1:
            raise StudyError(f"confidence {self.confidence!r} must be between 0 and 1")
        if not 0 < self.alpha < 1:
            raise StudyError(f"alpha {self.alpha!r} must be between 0 and 1")
        if self.bootstrap < 0 or self.n_resamples < 1:
            raise StudyError("bootstrap must be >= 0 and n_resamples >= 1")
        if self.sources is not None:
            bad = [s for s in self.sources if not s or s == "undecided"]
            if len(self.sources) < 2 or len(set(self.sources)) != len(self.sources) or bad:
                raise StudyError(f"sources {', '.join(self.sources)!r}: declare at least two "
                                 f"distinct pair sources (not 'undecided')")


@dataclass
class AnalysisResult:
    options: AnalysisOptions
    source: str
    rows: int
    kinds: dict[str, int]
    exclusions: pd.DataFrame
    cube: CountCube | None = None
    baselines: list[str] = field(default_factory=list)
    counts: pd.DataFrame | None = None
    descriptives: pd.DataFrame | None = None
    mann_whitney: pd.DataFrame | None = None
    participant: dict[str, pd.DataFrame] | None = None
    consistency_counts: pd.DataFrame | None = None
    consistency_tests: pd.DataFrame | None = None
    clmm: dict | None = None                       # mixed.clmm_ratings tables
    consistency_mixed: pd.DataFrame | None = None  # logistic mixed model per version
    consistency_participant: pd.DataFrame | None = None
    consistency_multi: dict | None = None          # more than two sources: multisource tables
    agreement: pd.DataFrame | None = None          # Krippendorff's alpha
    rating_kind: str | None = None                 # the rating kind cube/clmm/... describe
    pairwise: dict | None = None                   # pairwise tables (study/analysis/pairwise.py)
    kind_tables: dict[str, dict] = field(default_factory=dict)   # tables of an analysis added since,
                                                   #   keyed by its name (study/kinds/*: hive_distinction, hive_agreement)
    analysed: list[str] = field(default_factory=list)   # the kinds analysed, registry order
    analyses: list = field(default_factory=list)   # their study.kinds.analyses objects (hooks for
                                                   #   the summary, tables and report sections)
    primary: pd.DataFrame | None = None            # the declared primary result, one row per test
    preregistration: dict | None = None            # set by the CLI: as preregistered / deviations
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def analyze(answers: str | Path | pd.DataFrame, options: AnalysisOptions = AnalysisOptions()
            ) -> AnalysisResult:
    """Validate, exclude, and compute every table. Raises StudyError on bad input."""
    t0 = time.perf_counter()
    table = load_answers(answers, options.rules.needs(), options.scale, options.sources)
    t1 = time.perf_counter()
    source = "DataFrame" if isinstance(answers, pd.DataFrame) else str(answers)
    kinds = {str(k): int(v) for k, v in table["kind"].value_counts(sort=False).items() if v}
    kept, excl = apply_exclusions(table, options.rules)
    t2 = time.perf_counter()
    res = AnalysisResult(options=options, source=source, rows=len(table), kinds=kinds,
                         exclusions=excl)
    from study.kinds import REGISTRY, kind_of
    runs: dict = {}                       # analysis -> kinds of the file that use it
    for name in REGISTRY:
        if kinds.get(name):
            runs.setdefault(kind_of(name).analysis(), []).append(name)
    if options.target is not None and not any(a.needs_target for a in runs):
        takers = [n for n, k in REGISTRY.items() if k.has_target]
        raise StudyError(f"--target {options.target!r} given but the answers hold no saliency ratings "
                         f"(nor answers of another kind that compares methods: {', '.join(takers)})")
    res.seconds.update({"read_validate": t1 - t0, "exclusions": t2 - t1})
    analysed = []
    for analysis, names in runs.items():
        if analysis.run(names, kept, options, res):
            analysed.append(analysis)
            res.analysed += names
    res.analyses = analysed
    if not analysed:
        raise StudyError(f"{source}: no answers left to analyse (every answer was excluded)")
    t6 = time.perf_counter()
    res.agreement = agreement_table(kept, [options.target] + res.baselines if res.cube else None,
                                    options.scale, resamples=options.agreement_resamples,
                                    confidence=options.confidence, seed=options.seed)
    res.seconds["agreement"] = time.perf_counter() - t6
    from study.analysis.primary import primary_table
    res.primary = primary_table(res, analysed)
    return res


def rating_analysis(kind: str, kept: pd.DataFrame, options: AnalysisOptions, res: AnalysisResult) -> bool:
    """Ratings of one method's map (saliency, likert): counts, descriptives, Mann-Whitney,
    participant level, CLMM. False when every answer of `kind` was excluded."""
    t2 = time.perf_counter()
    rated = kept["kind"] == kind
    if not bool(rated.any()):
        res.notes.append(f"Every {kind} answer was excluded; no {kind} analysis.")
        return False
    if options.target is None:
        raise StudyError(f"the answers hold {kind} ratings: name the target method with --target")
    all_methods = sorted(str(m) for m in kept.loc[rated, "method"].unique())
    if options.target not in all_methods:
        raise StudyError(f"--target {options.target!r} is not a method in the {kind} answers "
                         f"(methods: {', '.join(all_methods)})")
    wanted = list(options.baselines) if options.baselines else None
    for b in wanted or []:
        if b not in all_methods:
            raise StudyError(f"baseline {b!r} is not a method in the {kind} answers "
                             f"(methods: {', '.join(all_methods)})")
    order = [options.target] + (wanted or [m for m in all_methods if m != options.target])
    order += [m for m in all_methods if m not in order]
    cube = count_cube(kept, options.scale, methods=order)
    baselines = check_methods(cube, options.target, wanted)
    res.cube, res.baselines = cube, baselines
    res.counts = counts_table(cube)
    res.descriptives = describe_ratings(cube, options.confidence)
    res.mann_whitney = compare_to_target(
        cube, options.target, baselines, alternative=options.alternative,
        method=options.mw_method, continuity=options.continuity,
        confidence=options.confidence, bootstrap=options.bootstrap,
        n_resamples=options.n_resamples, seed=options.seed, alpha=options.alpha)
    t3 = time.perf_counter()
    res.participant = participant_tests(kept, [options.target] + baselines, options.target,
                                        baselines, alternative=options.alternative,
                                        alpha=options.alpha, confidence=options.confidence)
    res.seconds[f"{kind}_answer_level"] = t3 - t2
    t5 = time.perf_counter()
    res.seconds[f"{kind}_participant_level"] = t5 - t3
    if options.mixed:
        from study.analysis.mixed import clmm_ratings
        try:
            res.clmm = clmm_ratings(kept, options.target, baselines, scale=options.scale,
                                    alternative=options.alternative, alpha=options.alpha,
                                    confidence=options.confidence,
                                    bootstrap=options.clmm_bootstrap, seed=options.seed)
        except StudyError as exc:
            if PRIMARIES[options.primary].mixed:
                raise StudyError(f"primary analysis (CLMM) cannot be fitted: {exc}") from None
            res.notes.append(f"Secondary CLMM not fitted: {exc}")
        else:
            conv = res.clmm["convergence"].iloc[0]
            if not conv["converged"]:
                res.notes.append(f"CLMM: {conv['summary']}")
            for factor in ("participant", "item"):
                levels = conv.get(f"levels_{factor}")
                if levels is not None and levels < 5:
                    res.notes.append(f"CLMM: only {levels} {factor} level(s): the {factor} "
                                     "variance is poorly determined; read the CLMM with care.")
        res.seconds[f"{kind}_clmm"] = time.perf_counter() - t5
    return True


def consistency_analysis(kinds: list[str], kept: pd.DataFrame, options: AnalysisOptions,
                         res: AnalysisResult) -> bool:
    """Choices between pair sources: counts, binomial, participant level, logistic mixed
    model (more than two sources: study/analysis/multisource.py)."""
    t4 = time.perf_counter()
    from study.analysis.multisource import declared_sources, is_multi, multisource_analysis
    chosen = kept["kind"].isin(kinds)
    if not bool(chosen.any()):
        res.notes.append(f"Every {' and '.join(kinds)} answer was excluded; no {' and '.join(kinds)} analysis.")
        return False
    if is_multi(kept, options.sources):
        sources = declared_sources(kept, options.sources)
        res.consistency_counts = consistency_counts(kept, sources)
        try:
            res.consistency_multi = multisource_analysis(
                kept, sources, confidence=options.confidence, mixed=options.mixed,
                seed=options.seed)
        except StudyError as exc:
            raise StudyError(f"consistency analysis ({len(sources)} pair sources): {exc}") from None
    else:
        res.consistency_counts = consistency_counts(kept)
        res.consistency_tests = consistency_tests(res.consistency_counts, options.confidence)
        res.consistency_participant = consistency_participant_tests(kept, options.confidence)
        if options.mixed:
            from study.analysis.mixed import consistency_mixed
            res.consistency_mixed = consistency_mixed(kept, options.confidence)
    res.seconds["consistency"] = time.perf_counter() - t4
    return True

