"""Global views: the numbers behind each figure, and that each figure builds."""
import numpy as np
import plotly.graph_objects as go

from core.explain import global_views as gv

CLASSES = [[0], [0, 1], [0, 1, 2], [], [2], [1, 2]]   # classes of 6 prototypes
NAMES = ["A", "B", "C<script>"]


def test_sharing_graph_weights_and_counts():
    g = gv.sharing_graph(CLASSES, 3)
    assert g[0][1]["weight"] == 2 and g[0][2]["weight"] == 1 and g[1][2]["weight"] == 2
    assert gv.sharing_counts(CLASSES) == {0: 1, 1: 2, 2: 2, 3: 1}
    assert gv.shared_prototypes(CLASSES) == [(1, [0, 1]), (2, [0, 1, 2]), (5, [1, 2])]


def test_figures_build_and_escape_names():
    figs = [gv.sharing_graph_figure(CLASSES, NAMES, seed=0), gv.sharing_histogram_figure(CLASSES),
            gv.shared_prototypes_figure(CLASSES, NAMES, only_class=2),
            gv.class_prototypes_figure(1, NAMES, [1, 2], [np.zeros((8, 8, 3), np.uint8)] * 2, ["red wing", None])]
    for fig in figs:
        assert isinstance(fig, go.Figure)
        assert "<script>" not in fig.to_json()
    table = figs[2].data[0]
    assert list(table.cells.values[0]) == [2, 5]
    bars = figs[1].data[0]
    assert list(bars.x) == [0, 1, 2, 3] and list(bars.y) == [1, 2, 2, 1]
    # deterministic layout
    assert gv.sharing_graph_figure(CLASSES, NAMES, seed=0).to_json() == figs[0].to_json()


def test_assignment_views():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.full(10, 0.05), size=(3, 4))   # (C, K, M), peaked like a trained model
    fig = gv.assignment_matrix_figure(a, 1, NAMES)
    z = np.asarray(fig.data[0].z)
    assert z.shape[0] == 4 and z.shape[1] <= 10
    assert np.allclose(z.sum(axis=1), a[1][:, a[1].max(axis=0) >= 0.01].sum(axis=1))
    hist = gv.assignment_histogram_figure(a)
    assert len(hist.data[0].x) == a.size


def test_contributions_figure_one_bar_per_slot_and_categorical_labels():
    from core.explain.global_views import contributions_figure
    from core.explain.local import Contribution

    rows = [Contribution(prototype=12, similarity=2.0, weight=1.0, contribution=2.0, own=True, slot=(0, 0)),
            Contribution(prototype=12, similarity=2.0, weight=1.0, contribution=2.0, own=True, slot=(0, 1)),
            Contribution(prototype=3, similarity=1.0, weight=-0.5, contribution=-0.5, own=False, slot=(1, 0))]
    fig = contributions_figure(rows, "class <b>", 3.5)
    labels = list(fig.data[0].y)
    assert len(set(labels)) == 3
    assert fig.layout.yaxis.type == "category"
    assert "<b>" not in fig.layout.title.text


def test_sharing_graph_labels_never_overlap():
    """Labels point outwards from their node on a circle whose radius leaves at least one
    line between neighbouring labels where they start (radial labels only diverge outwards);
    long names are shortened on the figure and whole in the hover."""
    rng = np.random.default_rng(1)
    for n in (3, 10, 60, 200):
        names = [f"{i:03d}.A_very_long_bird_species_name_number_{i}" for i in range(n)]
        classes = [sorted(rng.choice(n, 2, replace=False).tolist()) for _ in range(2 * n)]
        fig = gv.sharing_graph_figure(classes, names, seed=0, hide_isolated=False)
        nodes = fig.data[-1]
        labels = fig.layout.annotations
        assert len(labels) == len(nodes.x) == n
        extent = fig.layout.yaxis.range[1]
        plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
        radius_px = plot_px / (2 * extent)
        assert radius_px * 2 * np.pi / n >= gv.LABEL_FONT + 2
        for x, y, label in zip(nodes.x, nodes.y, labels):
            angle = np.arctan2(y, x)
            assert abs(x * label.y - y * label.x) < 1e-9 and label.x * x + label.y * y > 1   # on the ray, outside
            assert -90 <= label.textangle <= 90                                           # never upside down
            assert abs(np.radians(-label.textangle) - angle) % np.pi < 1e-6 or \
                abs(abs(np.radians(-label.textangle) - angle) % np.pi - np.pi) < 1e-6   # along the ray
            assert len(label.text) <= gv.LABEL_CHARS and label.text.endswith("\u2026")
        # the label box fits: centre + half its width stays inside the axis range
        assert all(np.hypot(a.x, a.y) + 0.31 * gv.LABEL_FONT * len(a.text) / radius_px <= extent for a in labels)
        assert set(nodes.text) == set(names)
