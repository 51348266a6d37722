"""The data set a checkpoint was trained on, read exactly as its config says.

Evaluation, projection, atlas building, merge-pruning and the app all need "split S of
the checkpoint's data set" with the same crop, size and validation split as training;
this is the one place that turns a checkpoint's `data` config into that data set, and
the one place that finds the data root a checkpoint records (`common.paths`, FORMATS.md §0):
an explicit root wins; else the config's `data.root`, absolute as is, relative looked up
from the checkpoint's folder upwards (never from the current folder).
"""
from __future__ import annotations

from pathlib import Path

from core.errors import DataError
from common.paths import not_found, resolve_stored


def data_options(meta: dict) -> dict:
    """`load_dataset` keyword arguments (besides kind, root, split) from a checkpoint's config."""
    data = dict((meta.get("config") or {}).get("data") or {})
    return dict(image_size=int(data.get("image_size", 224)), crop_to_bbox=bool(data.get("crop_to_bbox", True)),
                val_fraction=float(data.get("val_fraction", 0.1)), seed=int(data.get("split_seed", 0)))


def data_root(meta: dict, *, root=None, checkpoint=None, source: str = "checkpoint") -> Path:
    """The data set folder: `root` if given (a path from the user: the current folder's),
    else the checkpoint's `config.data.root` found from `checkpoint`'s folder upwards.

    A root that cannot be found is a DataError naming the recorded value and the fix.
    """
    if root:
        return Path(root)
    recorded = (meta.get("config") or {}).get("data", {}).get("root")
    if not recorded:
        raise DataError(f"{source}: no data root in the checkpoint's config (data.root); pass --data ROOT")
    if checkpoint is None:
        if Path(recorded).is_absolute():
            return Path(recorded)
        raise DataError(f"{source}: data root {recorded!r} (config data.root) is relative and the checkpoint's "
                        f"folder is unknown; pass --data ROOT")
    folder = Path(checkpoint).parent
    found = resolve_stored(recorded, folder, is_dir=True)
    if found is None:
        raise DataError(f"{source}: data set folder {not_found(recorded, folder)} (config data.root); "
                        f"pass the data set's folder with --data ROOT")
    return found


def checkpoint_dataset(meta: dict, split: str, *, root=None, checkpoint=None, kind: str | None = None,
                       num_classes: int | None = None, source: str = "checkpoint", **extra):
    """Split `split` of the checkpoint's data set; `root`/`kind` override the config's.

    `checkpoint`: the checkpoint file, from whose folder a relative `data.root` is found
    (default: `source` when it names an existing file, as every command passes it).
    With `num_classes`, a data set with another class count is a DataError naming both.
    """
    from core.data import load_dataset

    if checkpoint is None and source != "checkpoint" and Path(source).is_file():
        checkpoint = source
    data = dict((meta.get("config") or {}).get("data") or {})
    root = data_root(meta, root=root, checkpoint=checkpoint, source=source)
    ds = load_dataset(kind or data.get("dataset", "cub"), root, split=split, **data_options(meta), **extra)
    if num_classes is not None and ds.num_classes != num_classes:
        raise DataError(f"{root}: has {ds.num_classes} classes but {source} was trained on {num_classes}")
    return ds
