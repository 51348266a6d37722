"""Answer-level comparisons: the target method against each baseline, Mann-Whitney U.

Why two families: the paper-style question is asked once pooled over data sets and
once per data set. Holm's correction is applied within each family (pooled: one test
per baseline; per data set: one per data set and baseline), and the family is named in
the table so a reader knows what was corrected together.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.corrections import holm
from study.analysis.mannwhitney import mann_whitney_counts
from study.analysis.ratings import POOLED, CountCube
from study.errors import StudyError


def check_methods(cube: CountCube, target: str, baselines: list[str] | None) -> list[str]:
    """Validate the target and baselines against the methods present; return baselines."""
    known = ", ".join(cube.methods) or "none"
    if target not in cube.methods:
        raise StudyError(f"--target {target!r} is not a method in the saliency answers "
                         f"(methods: {known})")
    if baselines is None:
        baselines = [m for m in cube.methods if m != target]
    for b in baselines:
        if b not in cube.methods:
            raise StudyError(f"baseline {b!r} is not a method in the saliency answers "
                             f"(methods: {known})")
        if b == target:
            raise StudyError(f"baseline {b!r} is the target itself")
    if not baselines:
        raise StudyError(f"no baseline to compare {target!r} with (methods: {known})")
    return list(baselines)


def check_target(methods: list[str], options, res, what: str, noun: str = "answers") -> tuple[str, list[str]]:
    """(target, baselines) from the options, each checked against the answers' `methods`
    (`what`: the kinds named in errors); fills `res.baselines` when nothing did before."""
    if options.target is None:
        raise StudyError(f"the answers hold {what} {noun}: name the target method with --target "
                         f"(methods: {', '.join(methods)})")
    if options.target not in methods:
        raise StudyError(f"--target {options.target!r} is not a method in the {what} answers "
                         f"(methods: {', '.join(methods)})")
    baselines = list(options.baselines) if options.baselines else [m for m in methods if m != options.target]
    for b in baselines:
        if b not in methods or b == options.target:
            raise StudyError(f"baseline {b!r} is not a method in the {what} answers (methods: {', '.join(methods)})")
    if not baselines:
        raise StudyError(f"the {what} answers hold only the target method {options.target!r}: "
                         "there is no baseline to compare it with")
    if not res.baselines:
        res.baselines = baselines
    return options.target, baselines


def compare_to_target(cube: CountCube, target: str, baselines: list[str] | None = None, *,
                      alternative: str = "greater", method: str = "asymptotic",
                      continuity: bool = True, confidence: float = 0.95, bootstrap: int = 0,
                      n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05
                      ) -> pd.DataFrame:
    """One-sided (by default) Mann-Whitney U of target vs each baseline, pooled and per data set.

    Columns: family, dataset, target, baseline, then the columns of
    `mann_whitney_counts` (n_x = target answers, n_y = baseline answers, U of the
    target, ...), p_holm and reject (p_holm < alpha).
    """
    baselines = check_methods(cube, target, baselines)
    rows = []
    cells = [("pooled", POOLED)] + [("per dataset", d) for d in cube.datasets]
    for family, dataset in cells:
        cx = cube.cell(target, dataset)
        for b in baselines:
            cy = cube.cell(b, dataset)
            base = {"family": family, "dataset": dataset, "target": target, "baseline": b}
            if cx.sum() == 0 or cy.sum() == 0:
                rows.append({**base, "n_x": int(cx.sum()), "n_y": int(cy.sum()),
                             "p_value": np.nan, "alternative": alternative,
                             "p_method": "not tested (no answers)"})
                continue
            rows.append({**base, **mann_whitney_counts(
                cx, cy, alternative=alternative, method=method, continuity=continuity,
                confidence=confidence, bootstrap=bootstrap, n_resamples=n_resamples,
                seed=seed)})
    out = pd.DataFrame(rows)
    out["p_holm"] = np.nan
    for family in out["family"].unique():
        sel = out["family"] == family
        out.loc[sel, "p_holm"] = holm(out.loc[sel, "p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    out["alpha"] = alpha
    return out
