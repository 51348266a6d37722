"""Data sets: CUB-200-2011 (and the synthetic birds in its layout), Stanford Cars, image folders.

Public API (docs/INTERFACES.md "Data sets"): `load_dataset`, `ImageRecord`,
`ImageDataset`, `Geometry`, plus `mixup` (core.data.augment), `read_cub_annotations`
(core.data.cub) and `make_synthetic` (core.data.synthetic). Names are resolved lazily so
that `python -m core make-synthetic` and torch-free tools do not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_dataset": "core.data.loader",
    "ImageRecord": "core.data.records",
    "ImageDataset": "core.data.base",
    "Geometry": "core.data.geometry",
    "mixup": "core.data.augment",
    "read_cub_annotations": "core.data.cub",
    "CubAnnotations": "core.data.cub",
    "make_synthetic": "core.data.synthetic",
    "IMAGENET_MEAN": "core.data.base",
    "IMAGENET_STD": "core.data.base",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'core.data' has no attribute {name!r}")


def __dir__():
    return __all__
