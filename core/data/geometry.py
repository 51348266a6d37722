"""Mapping between model-input pixels and original-image pixels.

Every image goes through the same two steps: crop a box of the original image (the
bounding box, or the whole image) and resize that box to a square of S x S pixels.
Later stages (projection, heatmaps, naming) work in model-input pixels or on a
feature-map grid and must get back to the original file, where CUB's part locations
and boxes live; `Geometry` is the one place where that arithmetic is done.

Coordinates are continuous: pixel (i, j) covers [i, i+1) x [j, j+1), so a point maps by
`x = x0 + u * (x1 - x0) / S`. PIL's `Image.resize(..., box=crop)` samples with exactly
this convention, so the mapping matches the pixels the model sees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """A crop `(x0, y0, x1, y1)` of the original image resized to `size` x `size`."""

    crop: tuple[float, float, float, float]
    size: int
    original_size: tuple[int, int] | None = None  # (width, height) of the original file

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = (float(v) for v in self.crop)
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"empty crop box {self.crop}")
        if self.size <= 0:
            raise ValueError(f"model input size must be positive, got {self.size}")
        object.__setattr__(self, "crop", (x0, y0, x1, y1))

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per model pixel, (sx, sy)."""
        x0, y0, x1, y1 = self.crop
        return (x1 - x0) / self.size, (y1 - y0) / self.size

    def to_original_points(self, pts) -> np.ndarray:
        """(N, 2) x, y in model-input pixels -> original pixels."""
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        sx, sy = self.scale
        return np.stack([self.crop[0] + p[:, 0] * sx, self.crop[1] + p[:, 1] * sy], axis=1)

    def to_model_points(self, pts) -> np.ndarray:
        """(N, 2) x, y in original pixels -> model-input pixels (may fall outside [0, S))."""
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        sx, sy = self.scale
        return np.stack([(p[:, 0] - self.crop[0]) / sx, (p[:, 1] - self.crop[1]) / sy], axis=1)

    def to_original_box(self, box) -> tuple[float, float, float, float]:
        """Box `(x0, y0, x1, y1)` in model pixels -> original pixels."""
        (a, b), (c, d) = self.to_original_points(np.asarray(box, dtype=np.float64).reshape(2, 2))
        return float(a), float(b), float(c), float(d)

    def to_model_box(self, box) -> tuple[float, float, float, float]:
        """Box `(x0, y0, x1, y1)` in original pixels -> model pixels."""
        (a, b), (c, d) = self.to_model_points(np.asarray(box, dtype=np.float64).reshape(2, 2))
        return float(a), float(b), float(c), float(d)

    def cell_box(self, row: int, col: int, grid: int | tuple[int, int]) -> tuple[float, float, float, float]:
        """Model-pixel box of feature-map cell (row, col) on a `grid` (H, W or one int).

        The cell is the share of the input that the cell's position stands for (S / H
        pixels per row), not the receptive field of the backbone.
        """
        gh, gw = (grid, grid) if isinstance(grid, int) else grid
        ch, cw = self.size / gh, self.size / gw
        return col * cw, row * ch, (col + 1) * cw, (row + 1) * ch

    def cell_to_original_box(self, row: int, col: int, grid: int | tuple[int, int]) -> tuple[float, float, float, float]:
        """Original-pixel box of feature-map cell (row, col); see `cell_box`."""
        return self.to_original_box(self.cell_box(row, col, grid))

    def cell_center_original(self, row: int, col: int, grid: int | tuple[int, int]) -> tuple[float, float]:
        """Original-pixel centre of feature-map cell (row, col), for nearest-part look-ups."""
        x0, y0, x1, y1 = self.cell_to_original_box(row, col, grid)
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0


def crop_box_for(bbox, image_size: tuple[int, int], crop_to_bbox: bool) -> tuple[float, float, float, float]:
    """The crop actually used for an image of `image_size` (width, height).

    The bounding box is clipped to the image; a missing or degenerate box (less than one
    pixel wide or high after clipping) falls back to the whole image.
    """
    w, h = image_size
    if crop_to_bbox and bbox is not None:
        x0, y0, x1, y1 = (float(v) for v in bbox)
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(w), x1), min(float(h), y1)
        if x1 - x0 >= 1.0 and y1 - y0 >= 1.0:
            return x0, y0, x1, y1
    return 0.0, 0.0, float(w), float(h)
