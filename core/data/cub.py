"""CUB-200-2011 reader (the official folder layout; the synthetic birds use it too).

Two entry points: `read_cub_table` (what training needs: images, labels, splits, boxes)
and `read_cub_annotations` (what naming needs: parts, attributes, certainties, class
percentages). FORMATS.md §1.1 lists the files and what is accepted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.data.records import ImageRecord
from core.data.tables import (check_same_ids, read_id_names, read_numeric, require,
                              rows_of)
from core.errors import DataError

CUB_DIR = "CUB_200_2011"


def find_cub_dir(root) -> Path:
    """The folder holding images.txt: `root/CUB_200_2011/` or `root` itself."""
    root = Path(root)
    if (root / CUB_DIR / "images.txt").is_file():
        return (root / CUB_DIR).absolute()
    if (root / "images.txt").is_file():
        return root.absolute()
    if not root.exists():
        raise DataError(f"data set folder not found: {root}")
    raise DataError(f"missing file: {root / CUB_DIR / 'images.txt'} (nor {root / 'images.txt'}); "
                    "give the CUB archive root or its CUB_200_2011/ folder")


def find_attributes_txt(base: Path) -> Path:
    """attributes.txt sits beside CUB_200_2011/ in the official archive; accept it inside too."""
    for p in (base.parent / "attributes.txt", base / "attributes.txt", base / "attributes" / "attributes.txt"):
        if p.is_file():
            return p
    raise DataError(f"missing file: {base.parent / 'attributes.txt'} (also looked in {base} and "
                    f"{base / 'attributes'})")


@dataclass
class CubTable:
    """Rows sorted by image id; labels 0-based in the order of sorted class ids."""

    base: Path
    image_ids: np.ndarray
    paths: list[Path]
    labels: np.ndarray
    is_train: np.ndarray
    bboxes: np.ndarray  # (n, 4) x0, y0, x1, y1
    class_ids: np.ndarray
    class_names: list[str]

    def records(self, idx=None) -> list[ImageRecord]:
        idx = range(len(self.image_ids)) if idx is None else idx
        return [ImageRecord(int(self.image_ids[i]), self.paths[i], int(self.labels[i]),
                            tuple(float(v) for v in self.bboxes[i])) for i in idx]


def read_cub_table(root, check_images: bool = True) -> CubTable:
    """Images, classes, labels, official split and boxes, cross-checked by id."""
    base = find_cub_dir(root)
    images_txt = base / "images.txt"
    ids, rel = read_id_names(images_txt)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    rel = [rel[i] for i in order]

    classes_txt = base / "classes.txt"
    class_ids, class_names = read_id_names(classes_txt)
    corder = np.argsort(class_ids, kind="stable")
    class_ids = class_ids[corder]
    class_names = [class_names[i] for i in corder]

    lab_txt = base / "image_class_labels.txt"
    lab = read_numeric(lab_txt, ["image_id", "class_id"], {"image_id", "class_id"})
    check_same_ids(ids, images_txt, lab["image_id"], lab_txt)
    rows = rows_of(ids, lab["image_id"], images_txt, lab_txt)
    cls = np.empty(len(ids), dtype=np.int64)
    cls[rows] = lab["class_id"]
    labels = np.searchsorted(class_ids, cls)
    known = (labels < len(class_ids)) & (class_ids[np.clip(labels, 0, len(class_ids) - 1)] == cls)
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise DataError(f"class id {int(cls[i])} of image id {int(ids[i])} in {lab_txt} is not in {classes_txt}")

    split_txt = base / "train_test_split.txt"
    sp = read_numeric(split_txt, ["image_id", "is_training"], {"image_id", "is_training"})
    check_same_ids(ids, images_txt, sp["image_id"], split_txt)
    bad = np.flatnonzero((sp["is_training"] != 0) & (sp["is_training"] != 1))
    if bad.size:
        raise DataError(f"{split_txt}: is_training of image id {int(sp['image_id'][bad[0]])} must be 0 or 1, "
                        f"got {int(sp['is_training'][bad[0]])}")
    is_train = np.empty(len(ids), dtype=bool)
    is_train[rows_of(ids, sp["image_id"], images_txt, split_txt)] = sp["is_training"] == 1

    bb_txt = base / "bounding_boxes.txt"
    bb = read_numeric(bb_txt, ["image_id", "x", "y", "w", "h"], {"image_id"})
    check_same_ids(ids, images_txt, bb["image_id"], bb_txt)
    bboxes = np.empty((len(ids), 4), dtype=np.float64)
    r = rows_of(ids, bb["image_id"], images_txt, bb_txt)
    bboxes[r] = np.stack([bb["x"], bb["y"], bb["x"] + bb["w"], bb["y"] + bb["h"]], axis=1)

    paths = [base / "images" / p for p in rel]
    if check_images:
        for i, p in enumerate(paths):
            if not p.is_file():
                raise DataError(f"image id {int(ids[i])} listed in {images_txt}: file not found: {p}")
    return CubTable(base, ids, paths, labels.astype(np.int64), is_train, bboxes, class_ids, class_names)


@dataclass
class CubAnnotations:
    """Everything naming needs, one row per image (rows sorted by image id)."""

    image_ids: np.ndarray
    labels: np.ndarray
    is_train: np.ndarray
    class_names: list[str]
    bboxes: np.ndarray                     # (n, 4) x0, y0, x1, y1 original pixels
    part_names: list[str]                  # part id = index + 1
    part_locs: np.ndarray                  # (n, n_parts, 3) x, y, visible
    attribute_names: list[str]             # attribute id = index + 1
    attribute_groups: list[str]
    is_present: np.ndarray                 # (n, n_attributes) bool
    certainty: np.ndarray                  # (n, n_attributes) int8, 1..4 (1 where a row is missing)
    certainty_names: list[str]             # certainty id = index + 1
    class_attribute_percent: np.ndarray    # (n_classes, n_attributes) 0..100
    paths: list[Path] = field(default_factory=list)

    def row_of(self, image_id: int) -> int:
        pos = int(np.searchsorted(self.image_ids, image_id))
        if pos >= len(self.image_ids) or self.image_ids[pos] != image_id:
            raise DataError(f"image id {image_id} is not in the CUB annotations")
        return pos


def _read_parts(base: Path, ids: np.ndarray, images_txt: Path) -> tuple[list[str], np.ndarray]:
    parts_txt = base / "parts" / "parts.txt"
    part_ids, part_names = read_id_names(parts_txt)
    porder = np.argsort(part_ids, kind="stable")
    part_ids = part_ids[porder]
    part_names = [part_names[i] for i in porder]
    locs_txt = base / "parts" / "part_locs.txt"
    pl = read_numeric(locs_txt, ["image_id", "part_id", "x", "y", "visible"], {"image_id", "part_id", "visible"})
    rows = rows_of(ids, pl["image_id"], images_txt, locs_txt)
    cols = rows_of(part_ids, pl["part_id"], parts_txt, locs_txt, what="part id")
    locs = np.zeros((len(ids), len(part_ids), 3), dtype=np.float64)
    locs[rows, cols, 0] = pl["x"]
    locs[rows, cols, 1] = pl["y"]
    locs[rows, cols, 2] = (pl["visible"] != 0).astype(np.float64)
    return part_names, locs


def _read_attributes(base: Path, ids: np.ndarray, images_txt: Path, n_classes: int):
    attr_txt = find_attributes_txt(base)
    attr_ids, attr_names = read_id_names(attr_txt)
    aorder = np.argsort(attr_ids, kind="stable")
    attr_ids = attr_ids[aorder]
    attr_names = [attr_names[i] for i in aorder]
    groups = [n.split("::", 1)[0] for n in attr_names]

    cert_txt = base / "attributes" / "certainties.txt"
    cert_ids, cert_names = read_id_names(cert_txt)
    cert_names = [cert_names[i] for i in np.argsort(cert_ids, kind="stable")]

    lab_txt = base / "attributes" / "image_attribute_labels.txt"
    al = read_numeric(lab_txt, ["image_id", "attribute_id", "is_present", "certainty_id"],
                      {"image_id", "attribute_id", "is_present", "certainty_id"})
    rows = rows_of(ids, al["image_id"], images_txt, lab_txt)
    cols = rows_of(attr_ids, al["attribute_id"], attr_txt, lab_txt, what="attribute id")
    cert = al["certainty_id"]
    bad = np.flatnonzero((cert < 1) | (cert > max(len(cert_names), 1)) | ((al["is_present"] != 0) & (al["is_present"] != 1)))
    if bad.size:
        b = int(bad[0])
        raise DataError(f"{lab_txt}: image id {int(al['image_id'][b])} attribute id {int(al['attribute_id'][b])}: "
                        f"is_present {int(al['is_present'][b])} / certainty_id {int(cert[b])} out of range")
    is_present = np.zeros((len(ids), len(attr_ids)), dtype=bool)
    certainty = np.ones((len(ids), len(attr_ids)), dtype=np.int8)
    is_present[rows, cols] = al["is_present"] == 1
    certainty[rows, cols] = cert.astype(np.int8)

    cls_txt = require(base / "attributes" / "class_attribute_labels_continuous.txt")
    try:
        pct = np.loadtxt(cls_txt, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"cannot parse {cls_txt}: {exc}") from None
    if pct.shape != (n_classes, len(attr_ids)):
        raise DataError(f"{cls_txt}: expected {n_classes} rows x {len(attr_ids)} columns "
                        f"(classes x attributes), got {pct.shape[0]} x {pct.shape[1]}")
    return attr_names, groups, is_present, certainty, cert_names, pct


def read_cub_annotations(root, parts: bool = True, attributes: bool = True) -> CubAnnotations:
    """Read labels, splits, boxes, part locations and attribute annotations.

    `parts=False` / `attributes=False` skip those files (arrays come back empty).
    """
    t = read_cub_table(root, check_images=False)
    images_txt = t.base / "images.txt"
    n = len(t.image_ids)
    part_names, locs = ([], np.zeros((n, 0, 3)))
    if parts:
        part_names, locs = _read_parts(t.base, t.image_ids, images_txt)
    attr = ([], [], np.zeros((n, 0), bool), np.ones((n, 0), np.int8), [], np.zeros((len(t.class_names), 0)))
    if attributes:
        attr = _read_attributes(t.base, t.image_ids, images_txt, len(t.class_names))
    names, groups, present, cert, cert_names, pct = attr
    return CubAnnotations(t.image_ids, t.labels, t.is_train, t.class_names, t.bboxes, part_names, locs,
                          names, groups, present, cert, cert_names, pct, t.paths)


def load_cub(root, *, split: str = "train", image_size: int = 224, crop_to_bbox: bool = True,
             val_fraction: float = 0.1, seed: int = 0, augment: bool = False):
    """An ImageDataset over a split of a CUB-layout folder."""
    from core.data.base import ImageDataset
    from core.data.splits import select_split

    t = read_cub_table(root)
    idx = select_split(split, t.is_train, t.labels, val_fraction, seed)
    return ImageDataset(t.records(idx), t.class_names, image_size=image_size, crop_to_bbox=crop_to_bbox,
                        augment=augment and split in ("train", "trainval"), name="cub", split=split,
                        root=Path(root))
