"""Sharing: which classes share prototypes (core.explain.global_views figures).

The graph, the distribution and the shared-prototype table need only the atlas; the
assignment matrices need the model's slot distributions, so they appear when the
atlas's checkpoint is on this machine.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.cache import atlas_checkpoint, load_model
from app.views.models import choose_atlas
from app.workspace import Workspace


@st.cache_data(show_spinner=False, max_entries=8)
def _assignment(checkpoint: str, mtime: float):
    from core.explain.global_views import arrays_from_model

    model, _ = load_model(checkpoint)
    return arrays_from_model(model)["assignment"]


def render(workspace: Workspace) -> None:
    from core.explain import global_views as gv

    st.header("Sharing")
    atlas = choose_atlas(workspace, key="sharing_atlas")
    if atlas is None:
        return
    if not atlas.prototypes:
        st.info("This atlas holds imported heatmaps only (no prototypes to share).")
        return
    from core.explain.sharing import prototype_classes

    classes = atlas.class_names
    ids = list(atlas.prototypes)
    proto_classes, names = prototype_classes(atlas)   # the same numbers as `python -m core sharing`
    shared = gv.shared_prototypes(proto_classes)
    cols = st.columns(3)
    cols[0].metric("Prototypes", len(ids))
    cols[1].metric("Shared by 2+ classes", len(shared))
    cols[2].metric("Class pairs sharing", gv.sharing_graph(proto_classes, len(classes)).number_of_edges())
    st.plotly_chart(gv.sharing_graph_figure(proto_classes, classes), width="stretch", key="sharing_graph")
    st.plotly_chart(gv.sharing_histogram_figure(proto_classes), width="stretch", key="sharing_hist")
    st.plotly_chart(gv.shared_prototypes_figure(proto_classes, classes, names), width="stretch",
                    key="sharing_table")

    st.subheader("Assignment matrices")
    from core.errors import FormatError

    try:
        checkpoint = atlas_checkpoint(atlas)
    except FormatError as exc:  # recorded but not here: the figures above still hold
        st.info(f"Assignment matrices need the model: {exc}")
        return
    if checkpoint is None:
        st.info("This atlas records no checkpoint (an imported method); assignment matrices need the model.")
        return
    assignment = _assignment(str(checkpoint), Path(checkpoint).stat().st_mtime)
    if assignment is None:
        st.info("This model has no slot assignment (its prototypes feed the classes directly).")
        return
    class_index = st.selectbox("Class", range(len(classes)), format_func=lambda i: classes[i],
                               key="sharing_class")
    st.plotly_chart(gv.assignment_matrix_figure(assignment, class_index, classes, names), width="stretch",
                    key="assignment_matrix")
    st.plotly_chart(gv.assignment_histogram_figure(assignment), width="stretch", key="assignment_hist")
