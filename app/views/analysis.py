"""Analysis: the tables, tests and figures of `study.analysis`, and the report.

The page exports the study's answers with the command line's exporter (unblinded,
reports/ID/answers.csv) and runs the same `analyze` as `python -m study analyze`, with
the study's own attention rule and the analysis its spec declares (primary analysis,
target, alternative, alpha; private/spec.yaml): the primary result comes first, every
other table is labelled secondary. "Save" writes the same report folder as the command.
"""
from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from app.studies import choose_runner
from app.workspace import Workspace
from study.analysis.plan import PRIMARY_ANALYSES
from study.analysis.primary import primary_description
from study.analysis.sentence import primary_sentences
from study.errors import StudyError

REPORT_SCOPE = "pp-report"
# inside the app's main column (narrower than the report's page): smaller type, and
# cells may wrap (headers after underscores, values at spaces), so a wide table such as
# the Mann-Whitney one wraps inside the column instead of scrolling sideways
APP_TABLE_CSS = (f".{REPORT_SCOPE} table{{font-size:.76em;max-width:100%}}"
                 f".{REPORT_SCOPE} th,.{REPORT_SCOPE} td{{padding:.2em .4em}}")


def declared_plan(study):
    """The analysis declared in the study's spec (private/spec.yaml), or the defaults."""
    import yaml

    from common.yamlfile import load_yaml
    from study.analysis.plan import AnalysisPlan, parse_analysis_plan
    path = study.root / "private" / "spec.yaml"
    try:   # a key given twice is not caught here: one error line on the page
        raw = load_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
        return parse_analysis_plan(raw.get("analysis") if isinstance(raw, dict) else None, path)
    except (OSError, yaml.YAMLError, StudyError):
        return AnalysisPlan()


def declared_sources(study) -> tuple[str, ...] | None:
    """The consistency pair sources of the study's spec (`sources`), or None (the two)."""
    import yaml

    from common.yamlfile import load_yaml
    from study.spec import parse_sources
    path = study.root / "private" / "spec.yaml"
    try:   # as declared_plan: a key given twice is one error line on the page
        raw = load_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
        value = raw.get("sources") if isinstance(raw, dict) else None
        return None if value is None else parse_sources(path, value, raw.get("kind"))
    except (OSError, yaml.YAMLError, StudyError):
        return None


def method_labels(study) -> list[str]:
    """The method labels of the study's key (researcher-only: this page is behind the password)."""
    from study.kinds import REGISTRY
    return sorted({m for info in study.key.values() if info.get("kind") in REGISTRY
                   for m in REGISTRY[info["kind"]].methods_in(info)})


def render(workspace: Workspace) -> None:
    from study.analysis.exclusions import ExclusionRules
    from study.analysis.output import build_figures, write_analysis
    from study.analysis.pipeline import AnalysisOptions, analyze
    from study.analysis.report import render_report, report_sections, scoped_css
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
    st.caption(f"{n} answers (exported to {_in_workspace(answers, workspace)} in the workspace).")
    if n == 0:
        st.info("No answers yet: nothing to analyse.")
        return
    plan = declared_plan(study)
    target, baselines, alternative = None, None, plan.alternative
    primaries = list(PRIMARY_ANALYSES)
    primary = st.selectbox("Primary analysis", primaries, index=primaries.index(plan.primary),
                           key="analysis_primary",
                           help="declared in the spec's analysis.primary; any other choice is a "
                                "deviation from the plan")
    if primary != plan.primary:
        st.warning(f"The spec declares {plan.primary!r} as the primary analysis; "
                   f"{primary!r} is a deviation.")
    from study.kinds import kind_of
    kind = kind_of(study.kind)
    if kind.has_target:
        labels = method_labels(study)
        c1, c2, c3 = st.columns(3)
        default_target = labels.index(plan.target) if plan.target in labels else 0
        target = c1.selectbox("Target method", labels, index=default_target, key="analysis_target")
        others = [m for m in labels if m != target]
        baselines = c2.multiselect("Baselines", others, default=others, key="analysis_baselines")
        alts = ["greater", "two-sided", "less"]
        alternative = c3.selectbox("Alternative", alts, index=alts.index(plan.alternative),
                                   key="analysis_alternative")
    rules = ExclusionRules(max_attention_failures=int(study.manifest["attention"]["max_failures"]))
    try:
        options = AnalysisOptions(target=target if kind.has_target else None,
                                  baselines=tuple(baselines) if baselines else None,
                                  alternative=alternative, rules=rules, primary=primary,
                                  alpha=plan.alpha, confidence=plan.confidence,
                                  sources=declared_sources(study))
        with st.spinner("Fitting the mixed models..."):
            res = analyze(answers, options)
    except StudyError as exc:
        st.warning(str(exc))
        return
    for note in res.notes:
        st.caption(note)
    st.subheader("Primary analysis")
    desc = primary_description(primary, saliency=res.cube is not None,
                               consistency=res.consistency_counts is not None,
                              pairwise=res.pairwise is not None)
    st.caption(f"{primary}: {desc}. Every other table below is secondary.")
    if res.primary is not None and len(res.primary):
        # first the result in words (study/analysis/sentence.py: the report's, JSON's and
        # LaTeX's sentence), then the table with headed columns
        sentences = st.session_state["analysis_sentences"] = primary_sentences(res)
        for sentence in sentences:
            st.markdown(f"**{escape_markdown(sentence)}**")
        st.table(primary_display(res.primary))
    if res.clmm is not None:
        st.caption(f"CLMM fit: {res.clmm['convergence'].iloc[0]['summary']}")
    # Everything else as the HTML report shows it (same tables, same narrowed columns,
    # every text escaped), wrapping inside the page instead of scrolling sideways.
    st.html(f"<div class='{REPORT_SCOPE}'><style>{scoped_css('.' + REPORT_SCOPE)}{APP_TABLE_CSS}</style>"
            + "\n".join(report_sections(res, None, primary=False)[1:]) + "</div>")
    figures = build_figures(res)
    for name, fig in figures.items():
        st.plotly_chart(fig, width="stretch", key=f"analysis_fig_{name}")
    st.download_button("Download the report (HTML)", render_report(res, figures).encode("utf-8"),
                       file_name=f"{study_id}-report.html", mime="text/html", key="analysis_download")
    if st.button("Save the full report folder (tables, LaTeX, figures)", key="analysis_save"):
        try:
            files = write_analysis(res, folder / "report", png=False, force=True)
            # a path inside the workspace, not the server's absolute one
            st.success(f"Wrote {len(files)} files to {_in_workspace(folder / 'report', workspace)}/ in the workspace")
        except StudyError as exc:
            st.error(str(exc))


def _in_workspace(path, workspace: Workspace) -> str:
    """A path as the researcher knows it (reports/ID/...), not the server's absolute one."""
    from pathlib import Path

    path = Path(path)
    try:
        return path.resolve().relative_to(Path(workspace.home).resolve()).as_posix()
    except ValueError:
        return path.name


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def escape_markdown(text: str) -> str:
    """Text shown as is by st.markdown (method labels are the researcher's own words)."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def primary_display(primary: pd.DataFrame) -> pd.DataFrame:
    """The primary table as a reader wants it: one row per test, headed columns, the
    estimate with its interval in one cell, p-values to 3 significant digits."""
    def num(v) -> str:
        return "n/a" if v is None or v != v else f"{v:.3g}"

    return pd.DataFrame({
        "Study": primary["study"], "Comparison": primary["comparison"], "Effect": primary["effect"],
        "Estimate [95% CI]": [f"{num(e)} [{num(lo)}, {num(hi)}]" for e, lo, hi in
                              zip(primary["estimate"], primary["ci_low"], primary["ci_high"])],
        "Test": [f"{s} = {num(v)}" for s, v in zip(primary["statistic"], primary["value"])],
        "p": [num(v) for v in primary["p_value"]], "p (Holm)": [num(v) for v in primary["p_holm"]],
        "Significant": ["yes" if r else "no" for r in primary["reject"]],
        "Alternative": primary["alternative"], "n": primary["n"],
    }).set_index("Study")
