"""Plotly figures of the report, and their optional PNG export.

Why escaped labels: method and data-set names come from the answers file, and Plotly
renders a subset of HTML in labels (links, line breaks), so every name is HTML-escaped
before it becomes a label. PNG export needs Kaleido and a Chrome/Chromium; it is tried
once and, when it cannot work, skipped with a note instead of failing the analysis.
"""
from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from study.analysis.ratings import POOLED, CountCube

# diverging palette, least (1) to most salient (5)
SCORE_COLORS = ("#b2182b", "#ef8a62", "#d9d9d9", "#67a9cf", "#2166ac")
SOURCE_COLORS = {"data_dependent": "#2166ac", "undecided": "#bdbdbd", "euclidean": "#b2182b"}


def esc(text) -> str:
    """A data-derived string made safe for Plotly's HTML-like labels."""
    return html.escape(str(text), quote=True)


def _n_text(answers: int, participants: int | None) -> str:
    who = f"{participants} participants, " if participants is not None else ""
    return f"{who}n = {answers} answers"


def ratings_diverging(cube: CountCube, participants: int | None = None) -> go.Figure:
    """Diverging stacked bars: % of each score per method and data set (and pooled),
    low scores to the left of zero, high scores to the right, the middle split."""
    labels, rows = [], []
    for m, method in enumerate(cube.methods):
        cells = [(d, cube.counts[m, i]) for i, d in enumerate(cube.datasets)]
        cells.append((POOLED, cube.counts[m].sum(axis=0)))
        for dataset, c in cells:
            labels.append(f"{esc(method)} · {esc(dataset)} (n={int(c.sum())})")
            rows.append(c)
    counts = np.asarray(rows, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.nan_to_num(100.0 * counts / counts.sum(axis=1, keepdims=True))
    k = len(cube.scale)
    mid = k // 2 if k % 2 else None
    fig = go.Figure()
    lows = list(range(mid if mid is not None else k // 2))
    highs = list(range((mid + 1) if mid is not None else k // 2, k))

    def bar(idx, x, show, name=None):
        fig.add_trace(go.Bar(
            y=labels, x=x, orientation="h", name=name or str(cube.scale[idx]),
            marker_color=SCORE_COLORS[idx] if k == 5 else None,
            legendgroup=str(cube.scale[idx]), showlegend=show, legendrank=idx + 1,
            customdata=np.stack([pct[:, idx], counts[:, idx]], axis=1),
            hovertemplate=f"score {cube.scale[idx]}: %{{customdata[0]:.1f}}% "
                          f"(%{{customdata[1]:.0f}})<extra>%{{y}}</extra>"))

    if mid is not None:
        bar(mid, -pct[:, mid] / 2, False)
    for i in reversed(lows):
        bar(i, -pct[:, i], True)
    if mid is not None:
        bar(mid, pct[:, mid] / 2, True)
    for i in highs:
        bar(i, pct[:, i], True)
    ticks = np.arange(-100, 101, 20)
    fig.update_xaxes(tickvals=ticks, ticktext=[str(abs(int(t))) for t in ticks])
    fig.update_layout(barmode="relative",
                      title=f"Saliency ratings (% of answers; "
                            f"{_n_text(int(cube.counts.sum()), participants)})",
                      xaxis_title="% of answers (low scores left, high scores right)",
                      yaxis=dict(autorange="reversed"), legend_title_text="score",
                      legend_traceorder="normal", height=180 + 28 * len(labels))
    fig.add_vline(x=0, line_width=1, line_color="#444")
    return fig


def score_distribution(cube: CountCube, participants: int | None = None) -> go.Figure:
    """Share of each score per method, one panel per data set and one pooled."""
    panels = list(cube.datasets) + [POOLED]
    sizes = [int(cube.counts[:, i].sum()) for i in range(len(cube.datasets))]
    sizes.append(int(cube.counts.sum()))
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True,
                        subplot_titles=[f"{esc(p)} (n={n})" for p, n in zip(panels, sizes)])
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
    for m, method in enumerate(cube.methods):
        for j, panel in enumerate(panels):
            c = cube.cell(method, panel).astype(np.float64)
            pct = 100.0 * c / c.sum() if c.sum() else np.zeros_like(c)
            fig.add_trace(go.Bar(x=[str(s) for s in cube.scale], y=pct, name=esc(method),
                                 legendgroup=esc(method), showlegend=j == 0,
                                 marker_color=palette[m % len(palette)],
                                 hovertemplate="score %{x}: %{y:.1f}%<extra>" + esc(method)
                                 + "</extra>"), row=1, col=j + 1)
    fig.update_layout(barmode="group",
                      title=f"Score distribution per method "
                            f"({_n_text(int(cube.counts.sum()), participants)})",
                      yaxis_title="% of the method's answers", legend_title_text="method")
    fig.update_xaxes(title_text="score")
    return fig


CONSISTENCY_FIGURE = "consistency"   # its name among the report's figures (figures/consistency.html)


def consistency_bars(counts: pd.DataFrame, participants: int | None = None) -> go.Figure:
    """Stacked % of answers preferring each pair source, per version and pooled."""
    labels = [(f"version {esc(v)}" if v != "(all)" else "(all versions)") + f" (n={int(n)})"
              for v, n in zip(counts["version"], counts["n"])]
    n = counts["n"].to_numpy(dtype=np.float64)
    fig = go.Figure()
    sources = [c for c in counts.columns if c not in ("version", "n", "undecided")]
    order = ["data_dependent", "undecided", "euclidean"] if sources == [
        "data_dependent", "euclidean"] else [*sources, "undecided"]
    palette = ["#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#35978f"]
    for i, src in enumerate(order):
        c = counts[src].to_numpy(dtype=np.float64)
        pct = np.where(n > 0, 100.0 * c / np.where(n > 0, n, 1), 0.0)
        fig.add_trace(go.Bar(y=labels, x=pct, orientation="h", name=esc(src.replace("_", "-")),
                             marker_color=SOURCE_COLORS.get(src, palette[i % len(palette)]),
                             customdata=c, hovertemplate="%{x:.1f}% (%{customdata:.0f})"))
    total = int(counts["n"].iloc[-1]) if len(counts) else 0
    fig.update_layout(barmode="stack",
                      title=f"Consistency: which pair set was chosen ({_n_text(total, participants)})",
                      legend_traceorder="normal",
                      xaxis_title="% of answers", yaxis=dict(autorange="reversed"),
                      height=200 + 30 * len(labels))
    return fig


def _find_browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def write_figures(figures: dict[str, go.Figure], folder: Path, png: bool = True) -> tuple[list[str], list[str]]:
    """Write NAME.html (referencing plotly.min.js written once next to them, offline)
    and, when a renderer works, NAME.png. Returns (written relative paths, notes)."""
    folder.mkdir(parents=True, exist_ok=True)
    written, notes = [], []
    for name, fig in figures.items():
        fig.write_html(folder / f"{name}.html", include_plotlyjs="directory", full_html=True)
        written.append(f"figures/{name}.html")
    if figures:
        written.append("figures/plotly.min.js")
    if not png:
        notes.append("PNG export skipped (--no-png).")
        return written, notes
    try:
        import kaleido  # noqa: F401
    except ImportError:
        notes.append("PNG export skipped: the kaleido package is not installed "
                      "(pip install kaleido, which also needs Chrome or Chromium).")
        return written, notes
    browser = _find_browser()
    if browser and not os.environ.get("BROWSER_PATH"):
        os.environ["BROWSER_PATH"] = browser
    import plotly.io as pio

    names = list(figures)
    paths = [folder / f"{n}.png" for n in names]
    try:
        if hasattr(pio, "write_images"):  # one browser for all figures (plotly >= 6.1)
            pio.write_images(list(figures.values()), paths, width=1000, scale=1)
        else:  # pragma: no cover - older plotly
            for fig, path in zip(figures.values(), paths):
                fig.write_image(path, width=1000, scale=1)
        missing = [p.name for p in paths if not p.is_file() or p.stat().st_size == 0]
        if missing:  # a renderer killed under load can return without writing
            raise RuntimeError(f"no image written for {', '.join(missing)}")
    except Exception as exc:  # kaleido/Chrome failures come in many types
        for path in paths:
            path.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        notes.append(f"PNG export skipped: the renderer failed ({first[:200]}).")
        return written, notes
    written += [f"figures/{n}.png" for n in names]
    return written, notes
