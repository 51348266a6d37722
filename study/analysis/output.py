"""Write an analysis to its report folder atomically (FORMATS.md §7).

Why a temporary sibling folder: a failure half-way (a full disk, a renderer crash)
must leave --out as it was. Everything is written into `.NAME.tmp-*` next to it and
renamed into place at the end; an existing folder is replaced only with `force`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from common.atomic import AtomicFolder

from study.analysis.figures import CONSISTENCY_FIGURE, consistency_bars, ratings_diverging, score_distribution, write_figures
from study.analysis.latex import counts_latex, primary_latex
from study.analysis.pipeline import AnalysisResult
from study.analysis.report import render_report
from study.analysis.summary import summary_dict
from study.errors import StudyError


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def build_figures(res: AnalysisResult) -> dict:
    figs = {}
    if res.cube is not None:
        n_p = int(res.participant["means"]["participant_id"].nunique()) if res.participant else None
        figs["ratings_diverging"] = ratings_diverging(res.cube, participants=n_p)
        figs["score_distribution"] = score_distribution(res.cube, participants=n_p)
    if res.consistency_counts is not None:
        n_c = None if res.consistency_participant is None else int(
            res.consistency_participant["participants"].iloc[-1])
        if res.consistency_multi is not None:
            n_c = int(res.consistency_multi["comparisons_long"]["participant"].nunique())
        figs[CONSISTENCY_FIGURE] = consistency_bars(res.consistency_counts, participants=n_c)
    return figs


def _write_tables(res: AnalysisResult, folder: Path) -> list[str]:
    folder.mkdir()
    tables = {"exclusions": res.exclusions}
    if res.primary is not None:
        tables["primary"] = res.primary
    if res.clmm is not None:
        tables.update({f"clmm_{k}": res.clmm[k] for k in
                       ("contrasts", "coefficients", "variance", "lrt", "convergence",
                        "structure", "attempts", "probabilities", "proportional_odds")
                       if k in res.clmm and len(res.clmm[k])})
    if res.agreement is not None:
        tables["agreement"] = res.agreement
    if res.cube is not None:
        tables.update({"counts": res.counts, "descriptives": res.descriptives,
                       "mann_whitney": res.mann_whitney,
                       "participant_means": res.participant["means"],
                       "wilcoxon": res.participant["wilcoxon"],
                       "friedman": res.participant["friedman"],
                       "participant_method_means": res.participant["method_means"]})
    if res.consistency_multi is not None:
        m = res.consistency_multi
        tables["consistency_counts"] = res.consistency_counts
        tables.update({f"consistency_{k}": m[k] for k in ("model", "preferences") if k in m})
        tables.update({"consistency_win_rates": m["participant"]["win_rates"],
                       "consistency_friedman": m["participant"]["friedman"],
                       "consistency_comparisons": m["answer"]["comparisons"],
                       "consistency_comparisons_overall": m["answer"]["overall"]})
    elif res.consistency_counts is not None:
        tables.update({"consistency_counts": res.consistency_counts,
                       "consistency_tests": res.consistency_tests,
                       "consistency_participant": res.consistency_participant})
        if res.consistency_mixed is not None:
            tables["consistency_mixed"] = res.consistency_mixed
    for analysis in res.analyses:      # tables an analysis brings itself (study/kinds/analyses.py)
        tables.update(analysis.tables(res))
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return [f"tables/{n}.csv" for n in tables]


def write_analysis(res: AnalysisResult, out: str | Path, *, png: bool = True,
                   force: bool = False) -> list[str]:
    """Write summary.json, tables/*.csv, counts.tex, figures/, report.html into `out`.

    Returns the list of files written (relative to `out`). Raises StudyError when `out`
    exists and is not empty (unless `force`), leaving it untouched.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StudyError(f"--out {out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise StudyError(f"--out {out}: folder exists and is not empty (use --force to replace it)")
    umask = os.umask(0)
    os.umask(umask)
    # built in a hidden sibling, renamed over `out` at the end (common.atomic); the report
    # folder gets the usual permissions (the temporary one is private while it is written)
    with AtomicFolder(out, replace=True, mode=0o777 & ~umask) as tmp:
        files = _write_tables(res, tmp / "tables")
        if res.primary is not None and len(res.primary):
            from study.analysis.sentence import primary_sentence
            caption = f"Primary analysis ({res.options.primary}). {primary_sentence(res)}"
            (tmp / "primary.tex").write_text(primary_latex(res.primary, res.options.primary, caption),
                                             encoding="utf-8")
            files.append("primary.tex")
        if res.cube is not None:
            (tmp / "counts.tex").write_text(
                counts_latex(res.counts, res.descriptives, res.cube.scale), encoding="utf-8")
            files.append("counts.tex")
        figs = build_figures(res)
        fig_files, notes = write_figures(figs, tmp / "figures", png=png)
        files += fig_files
        files += ["report.html", "summary.json"]
        (tmp / "report.html").write_text(render_report(res, figs, notes=notes, files=files),
                                         encoding="utf-8")
        sha = None
        if res.source != "DataFrame" and Path(res.source).is_file():
            sha = file_sha256(Path(res.source))
        summary = summary_dict(res, input_sha256=sha, files=files, notes=notes)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n",
                                          encoding="utf-8")
    return files
