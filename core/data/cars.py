"""Stanford Cars reader, in torchvision's `StanfordCars` layout.

    ROOT/stanford_cars/            (ROOT may also be this folder itself)
      devkit/cars_meta.mat         class_names (196 strings)
      devkit/cars_train_annos.mat  annotations: bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname
      cars_test_annos_withlabels.mat   the same for the test images (also accepted in devkit/)
      cars_train/, cars_test/      the image files

Boxes in the devkit are MATLAB pixel indices (1-based, inclusive); they become
`(x1 - 1, y1 - 1, x2, y2)` in FORMATS.md pixels. Image ids: train images 1..n in
annotation order, then the test images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.records import ImageRecord
from core.data.tables import require
from core.errors import DataError

FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")


def find_cars_dir(root) -> Path:
    root = Path(root)
    for base in (root / "stanford_cars", root):
        if (base / "devkit").is_dir():
            return base.absolute()
    if not root.exists():
        raise DataError(f"data set folder not found: {root}")
    raise DataError(f"missing folder: {root / 'stanford_cars' / 'devkit'} (nor {root / 'devkit'}); "
                    "give the folder holding stanford_cars/ as torchvision lays it out")


def _loadmat(path: Path) -> dict:
    import scipy.io

    require(path)
    try:
        return scipy.io.loadmat(str(path), squeeze_me=True)
    except Exception as exc:  # scipy raises several types for a corrupt file
        raise DataError(f"cannot read MATLAB file {path}: {exc}") from None


def read_class_names(base: Path) -> list[str]:
    path = base / "devkit" / "cars_meta.mat"
    mat = _loadmat(path)
    if "class_names" not in mat:
        raise DataError(f"{path}: no 'class_names' variable")
    return [str(n) for n in np.atleast_1d(mat["class_names"]).tolist()]


def read_annotations(path: Path, images_dir: Path, n_classes: int, first_id: int) -> list[ImageRecord]:
    mat = _loadmat(path)
    if "annotations" not in mat:
        raise DataError(f"{path}: no 'annotations' variable")
    ann = np.atleast_1d(mat["annotations"])
    names = ann.dtype.names or ()
    for f in FIELDS:
        if f not in names:
            raise DataError(f"{path}: annotations have no field {f!r}")
    records = []
    for i, a in enumerate(ann):
        cls = int(a["class"])
        if not 1 <= cls <= n_classes:
            raise DataError(f"{path}: annotation {i + 1} ({a['fname']}) has class {cls}, "
                            f"but cars_meta.mat lists {n_classes} classes")
        file = images_dir / str(a["fname"])
        if not file.is_file():
            raise DataError(f"image listed in {path} not found: {file}")
        box = (float(a["bbox_x1"]) - 1.0, float(a["bbox_y1"]) - 1.0, float(a["bbox_x2"]), float(a["bbox_y2"]))
        records.append(ImageRecord(first_id + i, file, cls - 1, box))
    return records


def read_cars(root) -> tuple[list[ImageRecord], list[ImageRecord], list[str]]:
    """(train records, test records, class names)."""
    base = find_cars_dir(root)
    names = read_class_names(base)
    train = read_annotations(base / "devkit" / "cars_train_annos.mat", base / "cars_train", len(names), 1)
    test_mat = base / "cars_test_annos_withlabels.mat"
    if not test_mat.is_file() and (base / "devkit" / test_mat.name).is_file():
        test_mat = base / "devkit" / test_mat.name  # some copies keep it in the devkit
    test = read_annotations(test_mat, base / "cars_test", len(names), len(train) + 1)
    return train, test, names


def load_cars(root, *, split: str = "train", image_size: int = 224, crop_to_bbox: bool = True,
              val_fraction: float = 0.1, seed: int = 0, augment: bool = False):
    from core.data.base import ImageDataset
    from core.data.splits import select_split

    train, test, names = read_cars(root)
    allr = train + test
    is_train = np.array([True] * len(train) + [False] * len(test))
    idx = select_split(split, is_train, np.array([r.label for r in allr], dtype=np.int64), val_fraction, seed)
    return ImageDataset([allr[i] for i in idx], names, image_size=image_size, crop_to_bbox=crop_to_bbox,
                        augment=augment and split in ("train", "trainval"), name="cars", split=split,
                        root=Path(root))
