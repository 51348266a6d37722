"""One image of a data set, as every reader returns it.

Kept free of torch so that study code and light tools can read records too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageRecord:
    """An image file with its label and (optional) bounding box.

    `bbox` is `(x0, y0, x1, y1)` in pixels of the original file (x1, y1 exclusive),
    or None when the data set has no box for it (image folders).
    """

    image_id: int
    path: Path
    label: int
    bbox: tuple[float, float, float, float] | None = None
