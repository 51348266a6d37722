"""Cached readers shared by the pages, so a page render does no repeated disk work."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from common.atlas import Atlas


@st.cache_data(show_spinner=False)
def atlas(path: str, mtime: float) -> Atlas:
    """The typed atlas, validated; keyed by modification time so a rebuilt atlas reloads."""
    from core.atlas.format import read_atlas

    return read_atlas(Path(path))


def load_atlas(folder: Path) -> Atlas:
    manifest = folder / "atlas.json"
    return atlas(str(folder), manifest.stat().st_mtime)


@st.cache_data(show_spinner=False, max_entries=512)
def image_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


@st.cache_data(show_spinner=False)
def json_file(path: str, mtime: float) -> dict:
    return json.loads(Path(path).read_text())


@st.cache_resource(show_spinner=False, max_entries=4)
def model(path: str, mtime: float):
    """(model in eval mode, checkpoint meta), loaded once per checkpoint file version."""
    from core.training.checkpoint import load_checkpoint

    net, meta = load_checkpoint(Path(path), map_location="cpu")
    return net.eval(), meta


def load_model(path: str | Path):
    return model(str(path), Path(path).stat().st_mtime)


def checkpoint_dataset(meta: dict, split: str, *, checkpoint: str | Path, root: str | Path | None = None):
    """The split of the data set a checkpoint was trained on, read by `core.training.data`
    (the root: `root` when given, else the checkpoint's data.root found from the
    checkpoint's folder upwards) and cached per data config, split, root and checkpoint."""
    data = dict((meta.get("config") or {}).get("data") or {})
    return _dataset(json.dumps(data, sort_keys=True), split, str(checkpoint), str(root) if root else None)


@st.cache_resource(show_spinner=False, max_entries=8)
def _dataset(data_config: str, split: str, checkpoint: str, root: str | None):
    from core.training.data import checkpoint_dataset as load

    return load({"config": {"data": json.loads(data_config)}}, split, root=root, checkpoint=checkpoint,
                source=checkpoint)


def atlas_checkpoint(atlas: Atlas) -> Path | None:
    """The checkpoint an atlas was built from (None for an imported method); a recorded
    checkpoint found nowhere is a FormatError naming it (core.atlas.format)."""
    return atlas.created_from_path("checkpoint")


def atlas_data_root(atlas: Atlas) -> Path | None:
    """The data set folder the atlas was built from, when it is still there (else None: the
    checkpoint's own data.root is tried next)."""
    from core.errors import FormatError

    try:
        root = atlas.created_from_path("data_root")
    except FormatError:
        return None
    return root if root is not None and root.is_dir() else None
