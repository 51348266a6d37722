"""Small synthetic CUB-format sets for tests, generated once per test session.

`synthetic_set(tmp_path_factory, classes=4, images_per_class=6, size=64, seed=0)` returns
the archive root of a read-only set (tests that damage files copy it first with
`copy_set`). Module-level caching makes every test module share one generation.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.data.synthetic import make_synthetic

_CACHE: dict[tuple, Path] = {}


def synthetic_set(tmp_path_factory, classes: int = 4, images_per_class: int = 6, size: int = 64,
                  seed: int = 0) -> Path:
    key = (classes, images_per_class, size, seed)
    if key not in _CACHE:
        base = tmp_path_factory.mktemp(f"synthetic_{classes}x{images_per_class}_{size}_s{seed}")
        _CACHE[key] = make_synthetic(base / "birds", classes=classes, images_per_class=images_per_class,
                                     size=size, seed=seed)
    return _CACHE[key]


def copy_set(src: Path, dst: Path) -> Path:
    """A private, writable copy of a generated set (for corruption tests)."""
    shutil.copytree(src, dst)
    return dst


def truth(root: Path) -> dict:
    return json.loads((Path(root) / "synthetic_truth.json").read_text())
