"""Generic image folder: one sub-folder per class (classes sorted by folder name).

    ROOT/<class>/<image>                      split into train/test by `test_fraction` and
                                              `split_seed` (stratified), or
    ROOT/train/<class>/..., ROOT/test/<class>/...   when both exist (the given split is kept)

Files with an image extension are taken (case-insensitive); hidden files and folders are
skipped. There are no boxes, so `crop_to_bbox` has no effect. Image ids are 1..n in
(split, class, file name) order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.records import ImageRecord
from core.errors import DataError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _class_dirs(folder: Path) -> list[Path]:
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DataError(f"no class folders in {folder} (expected {folder}/<class name>/<image>)")
    return dirs


def _images(d: Path) -> list[Path]:
    files = sorted(p for p in d.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise DataError(f"class folder {d} holds no images ({', '.join(sorted(EXTENSIONS))})")
    return files


def read_folder(root, test_fraction: float = 0.2, split_seed: int = 0):
    """(records, is_train mask, class names)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data set folder not found: {root}")
    if (root / "train").is_dir() and (root / "test").is_dir():
        names = [d.name for d in _class_dirs(root / "train")]
        test_names = [d.name for d in _class_dirs(root / "test")]
        unknown = sorted(set(test_names) - set(names))
        if unknown:
            raise DataError(f"class folder {root / 'test' / unknown[0]} has no counterpart in {root / 'train'}")
        parts = [("train", True), ("test", False)]
    else:
        names = [d.name for d in _class_dirs(root)]
        parts = [(None, None)]
    records, is_train = [], []
    for sub, flag in parts:
        base = root / sub if sub else root
        for label, name in enumerate(names):
            d = base / name
            if sub == "test" and not d.is_dir():
                continue
            for f in _images(d):
                records.append(ImageRecord(len(records) + 1, f.resolve(), label, None))
                is_train.append(flag)
    labels = np.array([r.label for r in records], dtype=np.int64)
    if parts[0][0] is None:
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
        from core.data.splits import stratified_holdout

        mask = ~stratified_holdout(labels, test_fraction, split_seed)
    else:
        mask = np.array(is_train, dtype=bool)
    return records, mask, names


def load_folder(root, *, split: str = "train", image_size: int = 224, crop_to_bbox: bool = True,
                val_fraction: float = 0.1, seed: int = 0, augment: bool = False,
                test_fraction: float = 0.2, split_seed: int = 0):
    from core.data.base import ImageDataset
    from core.data.splits import select_split

    records, is_train, names = read_folder(root, test_fraction, split_seed)
    labels = np.array([r.label for r in records], dtype=np.int64)
    idx = select_split(split, is_train, labels, val_fraction, seed)
    return ImageDataset([records[i] for i in idx], names, image_size=image_size, crop_to_bbox=crop_to_bbox,
                        augment=augment and split in ("train", "trainval"), name="folder", split=split,
                        root=Path(root))
