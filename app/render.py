"""Small image helpers for the pages: patches with yellow boxes, cached per file."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st
from PIL import Image

from common.atlas import Atlas
from core.explain.overlay import draw_box


@st.cache_data(show_spinner=False, max_entries=1024)
def rgb(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@st.cache_data(show_spinner=False, max_entries=2048)
def patch_in_context(path: str, box: Sequence[float], margin: float = 0.6) -> np.ndarray:
    """The box drawn in yellow, shown with some of the image around it.

    The crop is a square around the box's centre where the image allows, so a row of
    patches lines up in equal tiles whatever the boxes' shapes.
    """
    image = draw_box(rgb(path), box)
    height, width = image.shape[:2]
    x0, y0, x1, y1 = box
    side = min(max(x1 - x0, y1 - y0) * (1 + 2 * margin), width, height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(min(max(0.0, cx - side / 2), width - side)))
    top = int(round(min(max(0.0, cy - side / 2), height - side)))
    side = int(round(side))
    return image[top:top + side, left:left + side]


def atlas_file(atlas: Atlas, rel: str) -> str:
    return str(atlas.root / rel)
