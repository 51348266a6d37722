"""Explain an image: the prediction and the "why" table (core.explain.local).

The image is either an upload (checked by content, app/upload.py) or a test image of
the model's data set. An upload becomes a one-image `ImageDataset` (whole image, no
box) so it goes through exactly the preprocessing of the data set's images.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app.cache import atlas_checkpoint, atlas_data_root, checkpoint_dataset, load_model
from app.upload import UploadError, check_image
from app.views.models import choose_atlas
from app.workspace import Workspace
from common.atlas import Atlas
from common.atomic import write_atomic

TOP_ROWS = 6


def upload_dataset(path: Path, like):
    """A one-image data set read like `like` (size, normalisation), without a box."""
    from core.data.base import ImageDataset
    from core.data.records import ImageRecord

    return ImageDataset([ImageRecord(image_id=0, path=path, label=-1, bbox=None)], like.class_names,
                        image_size=like.image_size, crop_to_bbox=False, name="upload")


def _save_upload(workspace: Workspace, data: bytes, ext: str) -> Path:
    """Store under uploads/ by content hash (same bytes, same file; written atomically)."""
    workspace.uploads.mkdir(parents=True, exist_ok=True)
    path = workspace.uploads / f"{hashlib.sha256(data).hexdigest()[:24]}.{ext}"
    if not path.exists():
        write_atomic(path, data)
    return path


@st.cache_data(show_spinner=False, max_entries=32)
def _explain(checkpoint: str, mtime: float, root: str | None, image_path: str, index: int, uploaded: bool,
             classes: tuple[int, ...]):
    from core.explain.local import explain_image

    model, meta = load_model(checkpoint)
    test = checkpoint_dataset(meta, "test", checkpoint=checkpoint, root=root)
    ds = upload_dataset(Path(image_path), test) if uploaded else test
    paths = {int(r.image_id): r.path
             for r in checkpoint_dataset(meta, "trainval", checkpoint=checkpoint, root=root).records}
    expl = explain_image(model, ds, 0 if uploaded else index, classes=list(classes),
                         projection=meta.get("projection"), image_paths=paths, device="cpu")
    return expl


def _names(atlas: Atlas) -> list[str | None]:
    return atlas.prototype_names()


def top_prototypes(rows, n: int) -> list:
    """One row per prototype (a ProtoPool prototype may fill several slots), ordered by
    the prototype's summed contribution, largest magnitude first."""
    total: dict[int, float] = {}
    first: dict[int, object] = {}
    for r in rows:
        total[r.prototype] = total.get(r.prototype, 0.0) + r.contribution
        first.setdefault(r.prototype, r)
    order = sorted(total, key=lambda p: -abs(total[p]))[:n]
    return [(first[p], total[p]) for p in order]


def _show_class(expl, label: int, names: list[str | None]) -> None:
    from core.explain.global_views import contributions_figure

    ce = expl.classes[label]
    st.markdown(f"**{ce.class_name}**: logit {ce.logit:.3f} = sum of {len(ce.rows)} contributions "
                f"({ce.total:.3f})")
    table = pd.DataFrame([{
        "prototype": r.prototype, "name": names[r.prototype] if r.prototype < len(names) else None,
        "slot": None if r.slot is None else f"{r.slot[0]}/{r.slot[1]}", "own class": r.own,
        "similarity": round(r.similarity, 4), "weight": round(r.weight, 4),
        "contribution": round(r.contribution, 4)} for r in ce.rows])
    st.dataframe(table, hide_index=True, width="stretch")
    fig = contributions_figure(ce.rows, ce.class_name, ce.logit, prototype_names=names)
    st.plotly_chart(fig, width="stretch", key=f"contrib-{label}")
    top = top_prototypes(ce.rows, TOP_ROWS)
    st.markdown("Largest contributions: where each prototype activates on this image, and its source patch")
    from core.explain.overlay import draw_box

    for column, (row, contribution) in zip(st.columns(len(top)), top):
        column.image(draw_box(expl.overlay(row), expl.box(row)), width="stretch",
                     caption=f"#{row.prototype}: {contribution:+.2f}")
        if row.source_patch is not None and row.source_patch.size:
            column.image(np.ascontiguousarray(row.source_patch), width="stretch", caption="source patch")


def _test_split(workspace: Workspace, model, meta: dict, checkpoint: Path, atlas: Atlas):
    """(test split or None, root override or None). The data root: the folder typed under
    "Data set folder" (absolute, or relative to the workspace) if any, else the folder the
    atlas was built from if it is still there, else the checkpoint's data.root found from
    the checkpoint's folder upwards (core.training.data). Not found, or a data set of
    another class count: one error line, and the box opens to type the folder."""
    from core.errors import DataError

    key = f"explain_data_root::{atlas.name}"
    box = st.container()
    override = str(st.session_state.get(key) or "").strip()
    root = (workspace.home / Path(override).expanduser()) if override else atlas_data_root(atlas)
    root = str(root) if root else None
    test, failed = None, False
    try:
        test = checkpoint_dataset(meta, "test", checkpoint=checkpoint, root=root)
        if test.num_classes != model.num_classes:
            raise DataError(f"{test.root or root}: has {test.num_classes} classes but {checkpoint} was trained on "
                            f"{model.num_classes}; give the folder of the data set it was trained on")
    except DataError as exc:
        test, failed = None, True
        st.error(f"{exc} (here: type the folder under “Data set folder” above)")
    with box.expander("Data set folder", expanded=failed):  # rendered every run, so the value is kept
        st.text_input("Folder of the data set this model was trained on (absolute, or relative to the "
                      "workspace; empty: the one the atlas and checkpoint record)", key=key,
                      placeholder="/path/to/synthetic-birds")
    return test, root


def render(workspace: Workspace) -> None:
    st.header("Explain an image")
    atlas = choose_atlas(workspace, key="explain_atlas")
    if atlas is None:
        return
    checkpoint = atlas_checkpoint(atlas)   # a recorded checkpoint found nowhere: one error line
    if checkpoint is None:
        st.info("This atlas records no checkpoint (an imported method), so no model can explain new images.")
        return
    model, meta = load_model(checkpoint)
    test, root = _test_split(workspace, model, meta, checkpoint, atlas)
    if test is None:
        return
    source = st.radio("Image", ["From the test set", "Upload"], horizontal=True, key="explain_source")
    image_path, index, uploaded = None, 0, False
    if source == "Upload":
        file = st.file_uploader("PNG or JPEG, at most 10 MB and 40 megapixels", key="explain_upload")
        if file is None:
            return
        data = file.getvalue()
        try:
            ext, _ = check_image(data, file.name)
        except UploadError as exc:
            st.error(str(exc))
            return
        image_path, uploaded = str(_save_upload(workspace, data, ext)), True
    else:
        c1, c2 = st.columns(2)
        true_class = c1.selectbox("Class", range(test.num_classes), format_func=lambda i: test.class_names[i],
                                  key="explain_true_class")
        members = [i for i, r in enumerate(test.records) if r.label == true_class]
        if not members:
            st.info("The test split holds no image of this class.")
            return
        index = c2.selectbox("Test image", members, format_func=lambda i: f"image {test.records[i].image_id}",
                             key="explain_index")
        image_path = str(test.records[int(index)].path)
    classes = test.class_names
    extra = st.multiselect("Also explain classes", range(len(classes)), format_func=lambda i: classes[i],
                           key="explain_classes")
    expl = _explain(str(checkpoint), Path(checkpoint).stat().st_mtime, root, image_path, int(index), uploaded,
                    tuple(sorted(int(c) for c in extra)))
    left, right = st.columns([1, 2])
    left.image(expl.image_rgb, caption="model input", width="stretch")
    probs = np.exp(expl.logits - expl.logits.max())
    probs /= probs.sum()
    best = np.argsort(-expl.logits)[:5]
    right.metric("Prediction", classes[expl.predicted])
    if not uploaded:
        right.caption(f"True class: {classes[expl.true_label]}")
    right.dataframe(pd.DataFrame({"class": [classes[i] for i in best], "logit": expl.logits[best].round(3),
                                  "softmax": probs[best].round(3)}), hide_index=True, width="stretch")
    names = _names(atlas)
    for label in expl.classes:
        _show_class(expl, label, names)
