"""Global views of a prototype model as Plotly figures (SPEC §3).

Every function takes plain arrays and lists (no torch), so the app can draw them from
a model (`arrays_from_model`) or from an atlas (classes per prototype are in the atlas):
a class's prototypes, prototypes shared between classes, the class-sharing graph,
how many prototypes are shared by how many classes, a class's assignment matrix
(slots × prototypes) and the histogram of assignment values.
"""
from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import networkx as nx
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from common.atlas import Atlas


def _label(names: Sequence[str] | None, i: int, prefix: str) -> str:
    if names is not None and i < len(names) and names[i]:
        return html.escape(str(names[i]))
    return f"{prefix} {i}"


def class_prototypes_figure(class_index: int, class_names: Sequence[str], prototype_ids: Sequence[int],
                            patches: Sequence[np.ndarray], prototype_names: Sequence[str | None] | None = None,
                            columns: int = 5) -> go.Figure:
    """The prototypes of one class: each prototype's source patch (RGB uint8) with its name."""
    n = max(len(prototype_ids), 1)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    titles = []
    for j, pid in enumerate(prototype_ids):
        name = prototype_names[j] if prototype_names is not None and j < len(prototype_names) else None
        titles.append(f"#{pid}" + (f": {html.escape(name)}" if name else ""))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles or [""])
    for j, patch in enumerate(patches):
        fig.add_trace(go.Image(z=np.asarray(patch), hoverinfo="skip"), row=j // cols + 1, col=j % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=f"Prototypes of {_label(class_names, class_index, 'class')}",
                      height=220 * rows + 60, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def shared_prototypes(prototype_classes: Sequence[Sequence[int]], min_classes: int = 2) -> list[tuple[int, list[int]]]:
    """(prototype, classes) for prototypes serving at least `min_classes` classes."""
    return [(p, sorted(cs)) for p, cs in enumerate(prototype_classes) if len(cs) >= min_classes]


def shared_prototypes_figure(prototype_classes: Sequence[Sequence[int]], class_names: Sequence[str],
                             prototype_names: Sequence[str | None] | None = None,
                             only_class: int | None = None) -> go.Figure:
    """A table of the prototypes shared between classes (optionally those of one class)."""
    rows = [(p, cs) for p, cs in shared_prototypes(prototype_classes) if only_class is None or only_class in cs]
    rows.sort(key=lambda r: (-len(r[1]), r[0]))
    # one class per line in a wide, left-aligned column: long class names (CUB's) stay whole
    fig = go.Figure(go.Table(
        columnwidth=[1, 3, 7, 1],
        header=dict(values=["prototype", "name", "classes", "how many"], align=["right", "left", "left", "right"]),
        cells=dict(values=[[p for p, _ in rows],
                           [_label(prototype_names, p, "") if prototype_names else "" for p, _ in rows],
                           ["<br>".join(_label(class_names, c, "class") for c in cs) for _, cs in rows],
                           [len(cs) for _, cs in rows]],
                   align=["right", "left", "left", "right"])))
    where = f" by {_label(class_names, only_class, 'class')}" if only_class is not None else ""
    fig.update_layout(title=f"Prototypes shared between classes{where} ({len(rows)})")
    return fig


def sharing_graph(prototype_classes: Sequence[Sequence[int]], num_classes: int) -> nx.Graph:
    """Classes as nodes; edge weight = number of prototypes the two classes share."""
    g = nx.Graph()
    g.add_nodes_from(range(num_classes))
    counts: Counter = Counter()
    for cs in prototype_classes:
        for a, b in combinations(sorted(set(cs)), 2):
            counts[(a, b)] += 1
    for (a, b), w in counts.items():
        g.add_edge(a, b, weight=w)
    return g


LABEL_FONT = 11          # px, class labels of the sharing graph
LABEL_CHARS = 28         # longer names are shortened on the figure (the hover shows them whole)
LABEL_GAP = 12           # px between a node's centre and the start of its label


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def circle_order(g: nx.Graph, seed: int = 0) -> list[int]:
    """Nodes in the order they go round the circle: by angle in a seeded spring layout, so
    classes that share prototypes sit near each other."""
    if g.number_of_nodes() < 3:
        return sorted(g.nodes)
    pos = nx.spring_layout(g, seed=seed, weight="weight")
    centre = np.mean([pos[n] for n in g.nodes], axis=0)
    return sorted(g.nodes, key=lambda n: (float(np.arctan2(pos[n][1] - centre[1], pos[n][0] - centre[0])), n))


def radial_label_layout(n: int, longest: int, font: int = LABEL_FONT) -> dict:
    """Geometry of a circle of n labelled nodes whose labels point outwards: the radius
    (px) is chosen so neighbouring labels are at least one line apart where they start
    (closest there: radial labels only diverge outwards), and room is left for the
    longest label. Returns {"radius_px", "side_px", "extent"} (extent = axis half-range in
    units of the radius)."""
    radius = max(120.0, n * (font + 3) / (2 * np.pi))
    room = LABEL_GAP + 0.62 * font * min(longest, LABEL_CHARS) + 8
    return {"radius_px": radius, "side_px": int(np.ceil(2 * (radius + room))), "extent": (radius + room) / radius}


def sharing_graph_figure(prototype_classes: Sequence[Sequence[int]], class_names: Sequence[str],
                         seed: int = 0, hide_isolated: bool = True) -> go.Figure:
    """The class-sharing graph as a circle (chord layout): classes that share prototypes sit
    near each other (seeded), thicker edges share more prototypes, and each label points
    outwards from its node, spaced so no two labels overlap (names are shortened to
    LABEL_CHARS; the hover shows them whole)."""
    g = sharing_graph(prototype_classes, len(class_names))
    if hide_isolated:
        g.remove_nodes_from([n for n in list(g.nodes) if g.degree(n) == 0])
    order = circle_order(g, seed)
    n = len(order)
    angles = {node: 2 * np.pi * i / max(n, 1) for i, node in enumerate(order)}
    pos = {node: (float(np.cos(a)), float(np.sin(a))) for node, a in angles.items()}
    names = {node: _label(class_names, node, "class") for node in order}
    geo = radial_label_layout(n, max((len(html.unescape(t)) for t in names.values()), default=1))
    fig = go.Figure()
    max_w = max((d["weight"] for _, _, d in g.edges(data=True)), default=1)
    for a, b, d in sorted(g.edges(data=True), key=lambda e: (e[0], e[1])):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        fig.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", hoverinfo="text",
                                 line=dict(width=1 + 5 * d["weight"] / max_w, color="rgba(90,90,90,0.5)"),
                                 text=f"{names[a]} – {names[b]}: {d['weight']} shared", showlegend=False))
    fig.add_trace(go.Scatter(x=[pos[v][0] for v in order], y=[pos[v][1] for v in order], mode="markers",
                             text=[names[v] for v in order], hoverinfo="text",
                             marker=dict(size=[min(16, 8 + g.degree(v, weight="weight")) for v in order],
                                         color="#2a9d8f"),
                             showlegend=False))
    annotations = []
    for v in order:
        text = _short(html.unescape(names[v]))
        # the label's centre sits on the node's ray, half its (estimated) width beyond the
        # node, and it is rotated about that centre: the text runs along the ray, outwards
        along = (geo["radius_px"] + LABEL_GAP + 0.31 * LABEL_FONT * len(text)) / geo["radius_px"]
        degrees = float(np.degrees(angles[v]))
        annotations.append(dict(
            x=pos[v][0] * along, y=pos[v][1] * along, xref="x", yref="y", showarrow=False,
            text=text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
            textangle=-degrees if np.cos(angles[v]) >= 0 else 180 - degrees,   # never upside down
            xanchor="center", yanchor="middle", font=dict(size=LABEL_FONT)))
    extent = geo["extent"]
    fig.update_xaxes(visible=False, range=[-extent, extent])
    fig.update_yaxes(visible=False, range=[-extent, extent], scaleanchor="x", scaleratio=1)
    margin = dict(l=10, r=10, t=50, b=10)
    fig.update_layout(title=f"Class-sharing graph ({g.number_of_edges()} edges; width = shared prototypes)",
                      annotations=annotations, height=geo["side_px"] + margin["t"] + margin["b"],
                      margin=margin, hovermode="closest")
    return fig


def sharing_counts(prototype_classes: Sequence[Sequence[int]]) -> dict[int, int]:
    """{number of classes: number of prototypes serving that many classes}."""
    return dict(sorted(Counter(len(set(cs)) for cs in prototype_classes).items()))


def sharing_histogram_figure(prototype_classes: Sequence[Sequence[int]]) -> go.Figure:
    """How many prototypes are shared by how many classes."""
    counts = sharing_counts(prototype_classes)
    mean = np.mean([len(set(cs)) for cs in prototype_classes if cs]) if any(prototype_classes) else 0.0
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), text=list(counts.values()), textposition="auto"))
    fig.update_layout(title=f"Prototypes by number of classes served (mean {mean:.2f} among used)",
                      xaxis_title="classes per prototype", yaxis_title="prototypes", xaxis=dict(dtick=1))
    return fig


def assignment_matrix_figure(assignment: np.ndarray, class_index: int, class_names: Sequence[str],
                             prototype_names: Sequence[str | None] | None = None,
                             only_used: bool = True) -> go.Figure:
    """One class's slot distributions (K slots × M prototypes) as a heatmap.

    `only_used` keeps the prototypes holding at least 1% of some slot, so 202 columns
    shrink to the few the class really uses.
    """
    a = np.asarray(assignment, dtype=np.float64)[class_index]          # (K, M)
    cols = np.flatnonzero(a.max(axis=0) >= 0.01) if only_used else np.arange(a.shape[1])
    if cols.size == 0:
        cols = np.arange(a.shape[1])
    labels = [f"#{p}" + (f" {html.escape(prototype_names[p])}" if prototype_names is not None
                         and p < len(prototype_names) and prototype_names[p] else "") for p in cols]
    fig = go.Figure(go.Heatmap(z=a[:, cols], x=labels, y=[f"slot {k}" for k in range(a.shape[0])],
                               zmin=0.0, zmax=1.0, colorscale="Viridis"))
    fig.update_layout(title=f"Assignment of {_label(class_names, class_index, 'class')}: slots × prototypes",
                      xaxis_title="prototype", yaxis_title="slot")
    return fig


def assignment_histogram_figure(assignment: np.ndarray, bins: int = 50) -> go.Figure:
    """Histogram of all assignment values (a trained ProtoPool is bimodal at 0 and 1)."""
    values = np.asarray(assignment, dtype=np.float64).ravel()
    fig = go.Figure(go.Histogram(x=values, xbins=dict(start=0.0, end=1.0 + 1e-9, size=1.0 / bins)))
    fig.update_layout(title=f"Assignment values ({values.size} entries)", xaxis_title="assignment value",
                      yaxis_title="count", yaxis_type="log")
    return fig


def contributions_figure(rows, class_name: str, logit: float, top: int = 15,
                         prototype_names: Sequence[str | None] | None = None) -> go.Figure:
    """A local explanation as bars: similarity × weight per slot/prototype (sum = logit)."""
    shown = sorted(rows, key=lambda r: -abs(r.contribution))[:top]

    def label(r) -> str:
        # One bar per row: a prototype that fills several slots gets one bar per slot.
        text = f"#{r.prototype}" + ("" if r.slot is None else f" slot {r.slot[1]}")
        if prototype_names is not None and r.prototype < len(prototype_names) and prototype_names[r.prototype]:
            text += f" {html.escape(prototype_names[r.prototype])}"
        return text + ("" if r.own else " (other class)")

    fig = go.Figure(go.Bar(x=[r.contribution for r in shown], y=[label(r) for r in shown], orientation="h",
                           hovertext=[f"similarity {r.similarity:.3f} × weight {r.weight:.3f}" for r in shown]))
    fig.update_layout(title=f"Why {html.escape(class_name)}? contributions sum to the logit {logit:.3f}",
                      xaxis_title="similarity × weight",
                      # labels like "#12" must stay categories, never be parsed as numbers
                      yaxis=dict(autorange="reversed", type="category"))
    return fig


def arrays_from_model(model) -> dict:
    """Plain arrays for the views from a model: prototype_classes and the slot assignment
    (C, K, M) where the architecture has one (ProtoPool's softmax(q), ProtoPNet's one-hot
    class identity), else None."""
    assignment = model.slot_assignment()   # the contract: None for architectures without slots (PIP-Net)
    return {"prototype_classes": model.prototype_classes(),
            "assignment": None if assignment is None else assignment.detach().cpu().numpy()}


def class_patches_from_atlas(atlas: Atlas, class_index: int) -> tuple[list[int], list[np.ndarray], list[str | None]]:
    """(prototype ids, source patches as RGB arrays, names) of one class, read from an atlas.

    `atlas`: the typed `common.atlas.Atlas`. The source box is used when the
    prototype was projected, else its nearest patch; prototypes with neither are skipped.
    """
    import cv2

    from core.explain.overlay import crop

    ids, patches, names = [], [], []
    for p in atlas.prototypes.values():
        if class_index not in p["classes"]:
            continue
        ref = p["source"] or (p["nearest"][0] if p["nearest"] else None)
        if ref is None:
            continue
        image = cv2.imread(str(atlas.root / ref["image"]), cv2.IMREAD_COLOR)
        if image is None:
            continue
        ids.append(int(p["id"]))
        patches.append(np.ascontiguousarray(crop(image[..., ::-1], ref["box"])))
        names.append(p.get("name"))
    return ids, patches, names
