"""Synthetic birds in the exact CUB-200-2011 layout (`python -m core make-synthetic`).

Why: tests, the demo and CI need a small data set with known answers. Each class has an
attribute profile over local parts (bill shape, crown, wing, tail, breast, ...), each
image draws a bird with those parts, true part locations, a tight bounding box, noisy
annotator labels with certainties and class attribute percentages; everything a CUB
reader, a prototype model and the naming procedure (SPEC §4) consume. The generator's
ground truth goes to `synthetic_truth.json` beside `CUB_200_2011/`.

Deterministic: the same arguments give byte-identical files (each image has its own
seeded generator, so images do not depend on each other). Written into a temporary
sibling folder and renamed into place, so a failure leaves nothing behind.
"""
from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from common import cli as options
from common.atomic import AtomicFolder
from core.data.synthetic_draw import PART_REGION, REGIONS, draw_bird
from core.data.synthetic_profiles import (ATTRIBUTES, CERTAINTY_NAMES, GROUP_ORDER, PART_GROUPS, PARTS,
                                          annotate, class_name, class_profiles, draw_values)
from core.errors import DataError

TRUTH_FORMAT = "protoproto-synthetic-truth"
TRUTH_VERSION = 1


def _lines(rows) -> str:
    return "".join(f"{r}\n" for r in rows)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92, subsampling=0, optimize=False)
    return buf.getvalue()


class _Drawn(NamedTuple):
    jpeg: bytes
    size: tuple[int, int]                             # (width, height)
    parts: dict
    box: tuple[float, float, float, float]
    pose: dict
    values: dict[str, str]
    annotation: tuple[np.ndarray, np.ndarray, np.ndarray]   # present, certainty, time


def _drawing(profile, seed: int, c: int, k: int, size: int):
    """Image k of class c: its generator (left ready for the annotator), values and drawing."""
    rng = np.random.default_rng([seed, 2, c, k])
    values = draw_values(profile, rng)
    return rng, values, draw_bird(values, rng, size)


def _draw_one(task) -> _Drawn:
    """One image from its own seeded generator (values, drawing, then the annotator)."""
    rng, values, d = _drawing(*task)
    return _Drawn(_jpeg(d.image), (int(d.image.shape[1]), int(d.image.shape[0])), d.parts, d.box, d.pose, values,
                  annotate(values, rng))


PARALLEL_FROM = 200  # images; below this, starting worker processes costs more than it saves


def _draw_all(tasks: list):
    """Draw every image, in order; on several cores in worker processes (each image has
    its own generator, so the files are the same either way)."""
    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or len(tasks) < PARALLEL_FROM:
        yield from map(_draw_one, tasks)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_draw_one, tasks, chunksize=max(1, len(tasks) // (8 * workers)))


def _build(root: Path, classes: int, images_per_class: int, size: int, seed: int, train_fraction: float,
           progress: bool = False) -> None:
    base = root / "CUB_200_2011"
    profiles = class_profiles(classes, np.random.default_rng([seed, 0]))
    taken: set[str] = set()
    folders = [f"{c + 1:03d}.{class_name(p, taken)}" for c, p in enumerate(profiles)]

    split_rng = np.random.default_rng([seed, 1])
    n_train = int(round(train_fraction * images_per_class))
    n_train = min(max(n_train, 1), images_per_class - 1)

    images, labels, splits, boxes, part_rows, attr_rows = [], [], [], [], [], []
    present_all = np.zeros((classes * images_per_class, len(ATTRIBUTES)), dtype=np.int8)
    truth_images = []
    image_id = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=classes * images_per_class, unit="img", desc="drawing birds")
    masks = []   # drawn first, class by class, so the split does not depend on the drawing
    for _ in range(classes):
        train_mask = np.zeros(images_per_class, dtype=bool)
        train_mask[split_rng.permutation(images_per_class)[:n_train]] = True
        masks.append(train_mask)
    tasks = [(profiles[c], seed, c, k, size) for c in range(classes) for k in range(images_per_class)]
    drawn = _draw_all(tasks)
    for c in range(classes):
        train_mask = masks[c]
        short = folders[c].split(".", 1)[1]
        for k in range(images_per_class):
            image_id += 1
            d = next(drawn)
            values = d.values
            present, cert, times = d.annotation
            rel = f"{folders[c]}/{short}_{k + 1:04d}_{image_id}.jpg"
            path = base / "images" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(d.jpeg)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c + 1}")
            splits.append(f"{image_id} {int(train_mask[k])}")
            x0, y0, x1, y1 = d.box
            boxes.append(f"{image_id} {x0:.1f} {y0:.1f} {x1 - x0:.1f} {y1 - y0:.1f}")
            for pid, name in enumerate(PARTS, start=1):
                x, y, vis = d.parts[name]
                part_rows.append(f"{image_id} {pid} {x:.1f} {y:.1f} {vis}")
            present_all[image_id - 1] = present
            attr_rows.extend(f"{image_id} {a + 1} {present[a]} {cert[a]} {times[a]:.3f}" for a in range(len(ATTRIBUTES)))
            truth_images.append({
                "image_id": image_id, "class_id": c + 1, "path": rel, "is_training": bool(train_mask[k]),
                "size": list(d.size), "box": [x0, y0, x1, y1],
                "pose": d.pose, "values": {g: values[g] for g in GROUP_ORDER},
                "parts": {name: list(d.parts[name]) for name in PARTS},
            })
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()

    _write_text(base / "images.txt", _lines(images))
    _write_text(base / "classes.txt", _lines(f"{c + 1} {f}" for c, f in enumerate(folders)))
    _write_text(base / "image_class_labels.txt", _lines(labels))
    _write_text(base / "train_test_split.txt", _lines(splits))
    _write_text(base / "bounding_boxes.txt", _lines(boxes))
    _write_text(base / "parts" / "parts.txt", _lines(f"{i} {n}" for i, n in enumerate(PARTS, start=1)))
    _write_text(base / "parts" / "part_locs.txt", _lines(part_rows))
    _write_text(root / "attributes.txt", _lines(f"{i} {n}" for i, n in enumerate(ATTRIBUTES, start=1)))
    _write_text(base / "attributes" / "certainties.txt",
                _lines(f"{i} {n}" for i, n in enumerate(CERTAINTY_NAMES, start=1)))
    _write_text(base / "attributes" / "image_attribute_labels.txt", _lines(attr_rows))
    pct = present_all.reshape(classes, images_per_class, -1).mean(axis=1) * 100.0
    _write_text(base / "attributes" / "class_attribute_labels_continuous.txt",
                _lines(" ".join(f"{v:.12f}" for v in row) for row in pct))
    truth = {
        "format": TRUTH_FORMAT, "version": TRUTH_VERSION,
        "arguments": {"classes": classes, "images_per_class": images_per_class, "size": size, "seed": seed,
                      "train_fraction": train_fraction},
        "parts": PARTS, "attributes": ATTRIBUTES, "part_attribute_groups": PART_GROUPS,
        "classes": [{"class_id": c + 1, "name": folders[c], "profile": {g: p[g] for g in sorted(p)}}
                    for c, p in enumerate(profiles)],
        "images": truth_images,
    }
    _write_text(root / "synthetic_truth.json", json.dumps(truth, indent=1, sort_keys=False) + "\n")


def make_synthetic(out_dir, classes: int = 10, images_per_class: int = 30, size: int = 128, seed: int = 0,
                   train_fraction: float = 0.5, overwrite: bool = False, progress: bool = False) -> Path:
    """Write a synthetic CUB-format archive root at `out_dir` and return its path.

    `load_dataset("cub", out_dir)` and `read_cub_annotations(out_dir)` read it back.
    An existing `out_dir` is an error unless it is empty or `overwrite` is set.
    """
    out = Path(out_dir)
    if classes < 1 or classes > 999:
        raise DataError(f"--classes must be between 1 and 999, got {classes}")
    if images_per_class < 2:
        raise DataError(f"--images-per-class must be at least 2 (one train, one test), got {images_per_class}")
    if size < 32:
        raise DataError(f"--size must be at least 32 pixels, got {size}")
    if not 0.0 < train_fraction < 1.0:
        raise DataError(f"train_fraction must be in (0, 1), got {train_fraction}")
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"output folder already exists and is not empty: {out} (use --force to replace it)")
    with AtomicFolder(out, replace=True, mode=0o755) as tmp:   # hidden sibling, renamed at the end
        _build(tmp, classes, images_per_class, size, seed, train_fraction, progress)
    return out


def redraw_regions(root, image_ids) -> dict[int, np.ndarray]:
    """The painted-region map (`synthetic_draw.REGIONS` codes, one per pixel) of each image.

    Not stored with the data: each image is drawn again from its seed and checked against
    `synthetic_truth.json` (same attribute values and part locations), so a folder made by
    another version of the drawing code is refused with one clear line, never misread.
    """
    root = Path(root)
    path = root / "synthetic_truth.json"
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the synthetic ground truth ({exc})") from None
    if truth.get("format") != TRUTH_FORMAT or truth.get("version") != TRUTH_VERSION:
        raise DataError(f"{path}: not a {TRUTH_FORMAT} version {TRUTH_VERSION} file")
    args = truth.get("arguments") or {}
    missing = [k for k in ("classes", "images_per_class", "seed", "size") if k not in args]
    if missing or not isinstance(truth.get("images"), list):
        raise DataError(f"{path}: field 'arguments' lacks {', '.join(missing) or 'nothing'}"
                        f"{'' if isinstance(truth.get('images'), list) else ', images missing'}; regenerate the birds")
    classes, per_class, seed = int(args["classes"]), int(args["images_per_class"]), int(args["seed"])
    profiles = class_profiles(classes, np.random.default_rng([seed, 0]))
    by_id = {int(im["image_id"]): im for im in truth["images"]}
    out = {}
    for image_id in image_ids:
        image_id = int(image_id)
        if image_id not in by_id:
            raise DataError(f"{path}: image_id {image_id} is not one of the synthetic images")
        c, k = divmod(image_id - 1, per_class)
        _, values, d = _drawing(profiles[c], seed, c, k, int(args["size"]))
        stored = by_id[image_id]
        same = {g: values[g] for g in stored["values"]} == stored["values"] and \
            all(list(d.parts[name]) == list(stored["parts"][name]) for name in PARTS)
        if not same:
            raise DataError(f"{path}: image_id {image_id} draws differently with this version of the code; "
                            f"regenerate the birds (python -m core make-synthetic)")
        out[image_id] = d.regions
    return out


def part_region_agreement(root, every: int = 10) -> tuple[float, dict[str, float]]:
    """How often a bird pixel's nearest visible part location lies on the pixel's own
    painted region (`PART_REGION`: the forehead location counts for the crown cap it sits
    on), overall and per region, over every `every`-th image (redrawn from its seed).

    Naming votes by nearest part location, so this bounds how consistently even a perfect
    detector of one painted region can be placed on one part.
    """
    path = Path(root) / "synthetic_truth.json"
    try:
        images = json.loads(path.read_text(encoding="utf-8"))["images"][::max(1, int(every))]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: cannot read the synthetic ground truth ({exc})") from None
    regions = redraw_regions(root, [im["image_id"] for im in images])
    hits: dict[str, int] = {}
    pixels: dict[str, int] = {}
    for im in images:
        painted = regions[int(im["image_id"])]
        ys, xs = np.nonzero(painted)
        visible = [(name, xyv) for name, xyv in im["parts"].items() if xyv[2]]
        centres = np.array([[xyv[0] - 0.5, xyv[1] - 0.5] for _, xyv in visible])   # pixel centres
        codes = np.array([REGIONS.index(PART_REGION[name]) for name, _ in visible])
        nearest = ((xs[:, None] - centres[None, :, 0]) ** 2 + (ys[:, None] - centres[None, :, 1]) ** 2).argmin(1)
        own = painted[ys, xs]
        for code in np.unique(own):
            here = own == code
            name = REGIONS[int(code)]
            hits[name] = hits.get(name, 0) + int((codes[nearest[here]] == code).sum())
            pixels[name] = pixels.get(name, 0) + int(here.sum())
    return sum(hits.values()) / max(1, sum(pixels.values())), {k: hits[k] / pixels[k] for k in sorted(pixels)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core make-synthetic",
                                 description="Generate synthetic birds in the CUB-200-2011 layout.")
    ap.add_argument("--out", required=True, type=Path, help="archive root to create")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--images-per-class", type=int, default=30)
    ap.add_argument("--size", type=int, default=128, help="longer image side in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-fraction", type=float, default=0.5)
    options.add_overwrite(ap, "an existing output folder", dest="force")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    out = make_synthetic(a.out, a.classes, a.images_per_class, a.size, a.seed, a.train_fraction, a.force,
                         progress=not a.quiet)
    n = a.classes * a.images_per_class
    print(f"wrote {n} images of {a.classes} classes to {out} (load with: load_dataset('cub', '{out}'))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
