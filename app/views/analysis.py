"""Analysis: the tables, tests and figures of `study.analysis`, and the report.

The page exports the study's answers with the command line's exporter (unblinded,
reports/ID/answers.csv) and runs the same `analyze` as `python -m study analyze`, with
the study's own attention rule; "Save" writes the same report folder as the command.
"""
from __future__ import annotations

import streamlit as st

from app.studies import choose_runner
from app.workspace import Workspace
from study.errors import StudyError

TABLES = [("Exclusions", "exclusions"), ("Counts of each score", "counts"), ("Descriptives", "descriptives"),
          ("Mann-Whitney U (answer level)", "mann_whitney"),
          ("Consistency counts", "consistency_counts"), ("Consistency tests", "consistency_tests")]


def method_labels(study) -> list[str]:
    """The method labels of the study's key (researcher-only: this page is behind the password)."""
    return sorted({info["method"] for info in study.key.values()
                   if info.get("kind") in ("saliency", "likert") and info.get("method")})


def render(workspace: Workspace) -> None:
    from study.analysis.exclusions import ExclusionRules
    from study.analysis.output import build_figures, write_analysis
    from study.analysis.pipeline import AnalysisOptions, analyze
    from study.analysis.report import render_report
    from study.export import export_answers

    st.header("Analysis")
    runner = choose_runner(workspace, key="analysis_study")
    if runner is None:
        return
    study_id = runner.study.root.name  # the folder name is what links carry
    study = runner.study
    folder = workspace.reports / study_id
    answers = folder / "answers.csv"
    n = export_answers(study, runner.store, answers)
    st.caption(f"{n} answers (exported to {answers}).")
    if n == 0:
        st.info("No answers yet: nothing to analyse.")
        return
    target, baselines, alternative = None, None, "greater"
    if study.kind in ("saliency", "likert"):
        labels = method_labels(study)
        c1, c2, c3 = st.columns(3)
        target = c1.selectbox("Target method", labels, key="analysis_target")
        others = [m for m in labels if m != target]
        baselines = c2.multiselect("Baselines", others, default=others, key="analysis_baselines")
        alternative = c3.selectbox("Alternative", ["greater", "two-sided", "less"], key="analysis_alternative")
    rules = ExclusionRules(max_attention_failures=int(study.manifest["attention"]["max_failures"]))
    try:
        options = AnalysisOptions(target=target if study.kind == "saliency" else None,
                                  baselines=tuple(baselines) if baselines else None,
                                  alternative=alternative, rules=rules)
        res = analyze(answers, options)
    except StudyError as exc:
        st.warning(str(exc))
        return
    for note in res.notes:
        st.caption(note)
    for title, attr in TABLES:
        df = getattr(res, attr, None)
        if df is not None:
            st.subheader(title)
            st.dataframe(df, hide_index=True, width="stretch")
    if res.participant:
        for name in ("wilcoxon", "friedman"):
            if name in res.participant and len(res.participant[name]):
                st.subheader(f"Participant level: {name.capitalize()}")
                st.dataframe(res.participant[name], hide_index=True, width="stretch")
    figures = build_figures(res)
    for name, fig in figures.items():
        st.plotly_chart(fig, width="stretch", key=f"analysis_fig_{name}")
    st.download_button("Download the report (HTML)", render_report(res, figures).encode("utf-8"),
                       file_name=f"{study_id}-report.html", mime="text/html", key="analysis_download")
    if st.button("Save the full report folder (tables, LaTeX, figures)", key="analysis_save"):
        try:
            files = write_analysis(res, folder / "report", png=False, force=True)
            st.success(f"Wrote {len(files)} files to {folder / 'report'}")
        except StudyError as exc:
            st.error(str(exc))
