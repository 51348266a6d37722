"""Cached readers shared by the pages, so a page render does no repeated disk work."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st


@st.cache_data(show_spinner=False)
def atlas(path: str, mtime: float) -> dict:
    """The atlas manifest, validated; keyed by modification time so a rebuilt atlas reloads."""
    from core.atlas.format import read_atlas

    return read_atlas(Path(path))


def load_atlas(folder: Path) -> dict:
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


@st.cache_resource(show_spinner=False, max_entries=8)
def dataset(kind: str, root: str, split: str, image_size: int, crop_to_bbox: bool, val_fraction: float, seed: int):
    from core.data import load_dataset

    return load_dataset(kind, root, split=split, image_size=image_size, crop_to_bbox=crop_to_bbox,
                        val_fraction=val_fraction, seed=seed)


def checkpoint_dataset(meta: dict, split: str, root: str | None = None):
    """The split of the data set a checkpoint was trained on, read as its config says
    (the same reading `core.atlas.build.build_atlas` does)."""
    data = dict((meta.get("config") or {}).get("data") or {})
    root = root or data.get("root")
    if not root:
        return None
    return dataset(data.get("dataset", "cub"), str(root), split, int(data.get("image_size", 224)),
                   bool(data.get("crop_to_bbox", True)), float(data.get("val_fraction", 0.1)),
                   int(data.get("split_seed", 0)))
