"""Models: pick an atlas, browse classes and their prototypes, open one prototype.

Everything shown comes from the atlas (FORMATS.md §4): source patches, nearest
patches, activation maps of the heatmap images and the naming evidence.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app.cache import load_atlas
from common.atlas import Atlas
from app.render import atlas_file, patch_in_context
from app.workspace import Workspace


def choose_atlas(workspace: Workspace, key: str = "atlas") -> Atlas | None:
    names = workspace.atlas_names()
    if not names:
        st.info(f"No atlas in {workspace.atlases}. Build one with `python -m core atlas ...` "
                "or `python -m app demo`.")
        return None
    name = st.selectbox("Atlas (model and data set)", names, key=key)
    return load_atlas(workspace.atlases / name)


def prototypes_of(atlas: Atlas, class_index: int) -> list[dict]:
    return [p for p in atlas.prototypes.values() if class_index in p["classes"]]


def label(proto: dict) -> str:
    naming = proto.get("naming") or {}
    name = proto.get("name") or naming.get("status") or "unnamed"
    return f"#{proto['id']} · {name}"


def render_prototype(atlas: Atlas, proto: dict, *, nearest: int = 5) -> None:
    classes = atlas.class_names
    st.markdown(f"**{label(proto)}** — used by {len(proto['classes'])} class(es): "
                + (", ".join(classes[c] for c in proto["classes"]) or "none"))
    tiles = []
    if proto.get("source"):
        tiles.append(("source patch", proto["source"]))
    tiles += [(f"nearest {i + 1}", n) for i, n in enumerate(proto.get("nearest", [])[:nearest])]
    if not tiles:
        st.caption("No patches recorded for this prototype.")
        return
    for column, (caption, entry) in zip(st.columns(len(tiles)), tiles):
        column.image(patch_in_context(atlas_file(atlas, entry["image"]), tuple(entry["box"])),
                     caption=caption, width="stretch")


def render_naming(proto: dict) -> None:
    """The naming evidence: the part each nearest patch fell on and the attributes that hold."""
    naming = proto.get("naming")
    if not naming:
        st.caption("This prototype was not named (the atlas was built without attribute annotations).")
        return
    cols = st.columns(3)
    cols[0].metric("Status", naming.get("status", "—"))
    cols[1].metric("Part", naming.get("part") or "—")
    cols[2].metric("Name", naming.get("name") or "—")
    votes = naming.get("part_votes") or {}
    if votes:
        st.markdown("Parts the nearest patches fell on: "
                    + ", ".join(f"{part} ({n})" for part, n in sorted(votes.items(), key=lambda kv: -kv[1])))
    patches = naming.get("patches") or []
    if patches:
        st.dataframe(pd.DataFrame([{k: p.get(k) for k in ("image_id", "class_name", "part", "part_location",
                                                           "part_distance")} for p in patches]),
                     hide_index=True, width="stretch")
    attributes = naming.get("attributes") or []
    if attributes:
        st.dataframe(pd.DataFrame([{"attribute": a.get("attribute"), "words": a.get("words"),
                                    "support": a.get("support")} for a in attributes]),
                     hide_index=True, width="stretch")


def _class_tab(atlas: Atlas) -> None:
    classes = atlas.class_names
    class_index = st.selectbox("Class", range(len(classes)), format_func=lambda i: classes[i], key="class")
    protos = prototypes_of(atlas, class_index)
    st.subheader(f"{classes[class_index]}: {len(protos)} prototypes")
    for proto in protos:
        render_prototype(atlas, proto)
    heatmaps = [h for h in atlas.heatmaps if h.get("label") == class_index][:6]
    if heatmaps:
        st.subheader("Activation maps on test images of this class")
        for column, heatmap in zip(st.columns(len(heatmaps)), heatmaps):
            proto = heatmap.get("prototype")
            column.image(atlas_file(atlas, heatmap["overlay"]),
                         caption="" if proto is None else f"prototype #{proto}", width="stretch")


def _prototype_tab(atlas: Atlas) -> None:
    if not atlas.prototypes:
        st.info("This atlas holds imported heatmaps only (no prototypes).")
        return
    ids = list(atlas.prototypes)
    by_id = atlas.prototypes
    proto_id = st.selectbox("Prototype", ids, format_func=lambda i: label(by_id[i]), key="prototype")
    proto = by_id[proto_id]
    render_prototype(atlas, proto, nearest=10)
    st.markdown("**Classes that share it**")
    classes = atlas.class_names
    st.write(", ".join(classes[c] for c in proto["classes"]) or "none")
    st.markdown("**Naming evidence**")
    render_naming(proto)


def render(workspace: Workspace) -> None:
    st.header("Models")
    atlas = choose_atlas(workspace)
    if atlas is None:
        return
    cols = st.columns(4)
    cols[0].metric("Method", atlas.method)
    cols[1].metric("Classes", atlas.num_classes)
    cols[2].metric("Prototypes", len(atlas.prototypes))
    test_acc = atlas.accuracy["test"]
    cols[3].metric("Test accuracy", "—" if test_acc is None else f"{100 * test_acc:.1f}%")
    view = st.radio("Show", ["Class", "Prototype"], horizontal=True, key="models_view")
    if view == "Class":
        _class_tab(atlas)
    else:
        _prototype_tab(atlas)
