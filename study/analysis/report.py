"""One self-contained HTML page with every table and figure of an analysis.

Why self-contained: the report is mailed, archived and opened offline years later, so
plotly.js is inlined once from the installed plotly package (never a CDN) and every
figure is a div that uses it. Every piece of text from the data (method, data set,
version names, file names, notes) is HTML-escaped here; figure JSON is produced by
Plotly, which escapes "</" inside its script blocks.
"""
from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from study.analysis.pipeline import AnalysisResult

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.86em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right}
th{background:#f3f3f3}td.t,th.t{text-align:left}
.note{color:#555;font-size:.9em}.label{display:inline-block;background:#eef;border-radius:4px;
padding:0 .4em;font-size:.8em;margin-left:.5em;vertical-align:middle}
"""


def esc(v) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if not v.is_integer() else f"{v:.0f}"
    return str(v)


def html_table(df: pd.DataFrame, columns: list[str] | None = None) -> str:
    """An escaped HTML table; text columns left-aligned."""
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    text_cols = {c for c in cols if df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype)}
    head = "".join(f'<th class="{"t" if c in text_cols else ""}">{esc(c)}</th>' for c in cols)
    body = []
    for row in df[cols].itertuples(index=False):
        cells = []
        for c, v in zip(cols, row):
            v = v.item() if hasattr(v, "item") else v
            cells.append(f'<td class="{"t" if c in text_cols else ""}">{esc(_fmt(v))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure_div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False})


MW_COLS = ["family", "dataset", "baseline", "n_x", "n_y", "U", "z", "p_value", "p_holm", "reject",
           "rank_biserial", "rank_biserial_ci_low", "rank_biserial_ci_high", "cles",
           "cles_ci_low", "cles_ci_high", "p_method"]
WIL_COLS = ["family", "dataset", "baseline", "n_pairs", "n_nonzero", "median_difference", "W",
            "z", "p_value", "p_holm", "reject", "rank_biserial", "p_method"]


def render_report(res: AnalysisResult, figures: dict[str, go.Figure], *,
                  notes: list[str] | None = None, files: list[str] | None = None) -> str:
    """The full HTML page as a string."""
    opt = res.options
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Study analysis</title>", f"<style>{CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        "<h1>Study analysis</h1>",
        f"<p>Answers: <code>{esc(res.source)}</code> — {res.rows} rows "
        f"({esc(', '.join(f'{k}: {v}' for k, v in res.kinds.items()))}).</p>",
        "<h2>Exclusions</h2>",
        "<p class='note'>Rules run in this order; <em>flagged</em> counts a rule on its own, "
        "<em>excluded</em> what it removed after the earlier rules.</p>",
        html_table(res.exclusions),
    ]
    if res.cube is not None:
        a = {"greater": "target &gt; baseline", "less": "target &lt; baseline",
             "two-sided": "target ≠ baseline"}[opt.alternative]
        parts += [
            "<h2>Saliency ratings</h2>",
            f"<p>Target: <strong>{esc(opt.target)}</strong>; baselines: "
            f"{esc(', '.join(res.baselines))}. Scale {res.cube.scale[0]}–{res.cube.scale[-1]}.</p>",
            "<h3>Counts of each score</h3>", html_table(res.counts),
            "<h3>Descriptive statistics</h3>",
            f"<p class='note'>{opt.confidence:.0%} interval of the mean: Student's t interval "
            "(answers treated as independent).</p>",
            html_table(res.descriptives),
            "<h3>Answer-level test<span class='label'>unit: answer</span></h3>",
            f"<p class='note'>Mann-Whitney U, alternative: {a}. "
            "U is the target's; z is tie-corrected. Effect sizes: rank-biserial correlation and "
            "common-language effect size (CLES = P(target &gt; baseline) + ½P(tie)), with "
            f"{esc(res.mann_whitney['ci_method'].iloc[0] if 'ci_method' in res.mann_whitney else '')} "
            "confidence intervals. Holm's correction within each family (pooled; per data "
            "set). Answers of one participant are not independent: read this next to the "
            "participant-level analysis.</p>",
            html_table(res.mann_whitney, MW_COLS),
            "<h3>Participant-level tests<span class='label'>unit: participant</span></h3>",
            "<p class='note'>Each participant's mean rating per method. Wilcoxon signed-rank "
            f"test (paired, alternative: {a}; zero differences dropped; "
            "rank-biserial = matched-pairs rank-biserial correlation), Holm within each family; "
            "Friedman test across methods on participants who rated all of them "
            "(Kendall's W as effect size).</p>",
            html_table(res.participant["wilcoxon"], WIL_COLS),
            html_table(res.participant["friedman"]),
        ]
        for key in ("ratings_diverging", "score_distribution"):
            if key in figures:
                parts.append(_figure_div(figures[key], key))
    if res.consistency_counts is not None:
        parts += [
            "<h2>Consistency choices</h2>",
            "<p class='note'>Answers preferring the data-dependent or the Euclidean pair set, "
            "and undecided. Two-sided binomial test of data-dependent vs Euclidean against ½, "
            "undecided excluded; interval of the data-dependent proportion: Clopper-Pearson "
            "(exact), Wilson given too.</p>",
            html_table(res.consistency_counts), html_table(res.consistency_tests),
        ]
        if "consistency" in figures:
            parts.append(_figure_div(figures["consistency"], "consistency"))
    all_notes = list(res.notes) + list(notes or [])
    if all_notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in all_notes)
                     + "</ul>")
    if files:
        parts.append("<h2>Files</h2><ul>" + "".join(f"<li><code>{esc(f)}</code></li>" for f in files)
                     + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
