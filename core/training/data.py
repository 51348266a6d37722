"""The data set a checkpoint was trained on, read exactly as its config says.

Evaluation, projection, atlas building, merge-pruning and the app all need "split S of
the checkpoint's data set" with the same crop, size and validation split as training;
this is the one place that turns a checkpoint's `data` config into that data set.
"""
from __future__ import annotations

from core.errors import DataError


def data_options(meta: dict) -> dict:
    """`load_dataset` keyword arguments (besides kind, root, split) from a checkpoint's config."""
    data = dict((meta.get("config") or {}).get("data") or {})
    return dict(image_size=int(data.get("image_size", 224)), crop_to_bbox=bool(data.get("crop_to_bbox", True)),
                val_fraction=float(data.get("val_fraction", 0.1)), seed=int(data.get("split_seed", 0)))


def checkpoint_dataset(meta: dict, split: str, *, root=None, kind: str | None = None, num_classes: int | None = None,
                       source: str = "checkpoint", **extra):
    """Split `split` of the checkpoint's data set; `root`/`kind` override the config's.

    With `num_classes`, a data set with another class count is a DataError naming both.
    """
    from core.data import load_dataset

    data = dict((meta.get("config") or {}).get("data") or {})
    root = root or data.get("root")
    if not root:
        raise DataError(f"{source}: no data root in the checkpoint's config; pass --data ROOT")
    ds = load_dataset(kind or data.get("dataset", "cub"), root, split=split, **data_options(meta), **extra)
    if num_classes is not None and ds.num_classes != num_classes:
        raise DataError(f"{root}: has {ds.num_classes} classes but {source} was trained on {num_classes}")
    return ds
