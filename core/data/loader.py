"""`load_dataset`: one call for every data-set kind (a registry, not an if-chain)."""
from __future__ import annotations

from typing import Callable

from core.errors import DataError

SPLITS = ("train", "val", "trainval", "test")


def _cub(root, **kw):
    from core.data.cub import load_cub

    return load_cub(root, **kw)


def _cars(root, **kw):
    from core.data.cars import load_cars

    return load_cars(root, **kw)


def _folder(root, **kw):
    from core.data.folder import load_folder

    return load_folder(root, **kw)


READERS: dict[str, Callable] = {"cub": _cub, "cars": _cars, "folder": _folder}


def load_dataset(kind: str, root, split: str = "train", image_size: int = 224, crop_to_bbox: bool = True,
                 val_fraction: float = 0.1, seed: int = 0, augment: bool = False, **options):
    """An `ImageDataset` for `split` of the data set of `kind` at `root`.

    kind: "cub" (also the synthetic birds), "cars" or "folder". `split`: "train" (the
    official train split minus the validation share), "val" (a stratified
    `val_fraction` of train, chosen by `seed`), "trainval" or "test". Augmentation is
    applied to "train"/"trainval" only. `options` go to the reader (e.g. the folder
    reader's `test_fraction`).
    """
    if kind not in READERS:
        raise DataError(f"unknown data set kind {kind!r}: use one of {', '.join(READERS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    return READERS[kind](root, split=split, image_size=int(image_size), crop_to_bbox=bool(crop_to_bbox),
                         val_fraction=float(val_fraction), seed=int(seed), augment=bool(augment), **options)
