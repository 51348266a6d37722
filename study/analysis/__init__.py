"""Analysis of study answers: exclusions, rating statistics, tests, figures, report.

Public API (imported lazily, so `import study.analysis` stays cheap):

    from study.analysis import analyze, AnalysisOptions, ExclusionRules, write_analysis
    res = analyze("answers.csv", AnalysisOptions(target="ProtoPool"))
    res.primary                      # the declared primary analysis (clmm by default)
    res.clmm["contrasts"], res.counts, res.mann_whitney, res.participant["wilcoxon"], ...
    write_analysis(res, "report/")

One statistical test per function, each returning a tidy DataFrame, one row per test or
contrast, with named columns for the statistic, p-value, effect size and alternative
(pingouin style): `mann_whitney`, `wilcoxon`, `friedman`, `binomial`, `clmm_contrasts`
(`wilcoxon_paired`, `friedman_row`, `binomial_test` give one such row as a dict, for
building tables of several tests); the cumulative link mixed model `fit_clmm` (R's
ordinal::clmm on NumPy/SciPy) and `clmm_ratings` (all its tables);
Krippendorff's alpha; the preregistration (`build_prereg`, `check_against_prereg`).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "analyze": "study.analysis.pipeline",
    "AnalysisOptions": "study.analysis.pipeline",
    "AnalysisResult": "study.analysis.pipeline",
    "ExclusionRules": "study.analysis.exclusions",
    "apply_exclusions": "study.analysis.exclusions",
    "load_answers": "study.analysis.io",
    "Needs": "study.analysis.io",
    "count_cube": "study.analysis.ratings",
    "describe_ratings": "study.analysis.ratings",
    "mann_whitney": "study.analysis.mannwhitney",
    "mann_whitney_counts": "study.analysis.mannwhitney",
    "mwu_from_counts": "study.analysis.mannwhitney",
    "compare_to_target": "study.analysis.comparisons",
    "wilcoxon_paired": "study.analysis.participant_level",
    "wilcoxon": "study.analysis.participant_level",
    "friedman_row": "study.analysis.participant_level",
    "binomial": "study.analysis.consistency",
    "clmm_contrasts": "study.analysis.mixed",
    "logistic_mixed_share": "study.analysis.pairwise",
    "bradley_terry": "study.analysis.bradley_terry",
    "friedman": "study.analysis.participant_level",
    "participant_tests": "study.analysis.participant_level",
    "binomial_test": "study.analysis.consistency",
    "consistency_counts": "study.analysis.consistency",
    "consistency_tests": "study.analysis.consistency",
    "holm": "study.analysis.corrections",
    "write_analysis": "study.analysis.output",
    "synthetic_answers": "study.analysis.synthetic",
    "fit_clmm": "study.analysis.clmm",
    "clmm_ratings": "study.analysis.mixed",
    "glmm_proportion": "study.analysis.mixed",
    "consistency_mixed": "study.analysis.mixed",
    "krippendorff_alpha": "study.analysis.agreement",
    "agreement_table": "study.analysis.agreement",
    "AnalysisPlan": "study.analysis.plan",
    "build_prereg": "study.analysis.prereg",
    "check_against_prereg": "study.analysis.prereg",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'study.analysis' has no attribute {name!r}")
