"""Data-set figures: synthetic generation speed, CUB-scale table parsing, item throughput.

Run: .venv/bin/python bench/bench_data.py  (prints figures; nothing is asserted)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import load_dataset, read_cub_annotations  # noqa: E402
from core.data.synthetic import make_synthetic  # noqa: E402


def write_cub_scale_tables(root: Path, n_images: int = 11788, n_classes: int = 200, n_attr: int = 312,
                           n_parts: int = 15, seed: int = 0) -> None:
    """Text tables the size of the real CUB-200-2011 (no image files), with a few rows
    carrying an extra field as the real image_attribute_labels.txt does."""
    rng = np.random.default_rng(seed)
    base = root / "CUB_200_2011"
    (base / "parts").mkdir(parents=True)
    (base / "attributes").mkdir()
    ids = np.arange(1, n_images + 1)
    labels = rng.integers(1, n_classes + 1, n_images)
    (base / "images.txt").write_text("".join(f"{i} {c:03d}.C/img_{i}.jpg\n" for i, c in zip(ids, labels)))
    (base / "classes.txt").write_text("".join(f"{c} {c:03d}.Class_{c}\n" for c in range(1, n_classes + 1)))
    (base / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, c in zip(ids, labels)))
    (base / "train_test_split.txt").write_text("".join(f"{i} {i % 2}\n" for i in ids))
    (base / "bounding_boxes.txt").write_text("".join(f"{i} 10.0 20.0 200.0 150.0\n" for i in ids))
    (base / "parts" / "parts.txt").write_text("".join(f"{p} part{p}\n" for p in range(1, n_parts + 1)))
    pi, pp = np.meshgrid(ids, np.arange(1, n_parts + 1), indexing="ij")
    locs = np.column_stack([pi.ravel(), pp.ravel(), rng.uniform(0, 400, pi.size), rng.uniform(0, 300, pi.size),
                            rng.integers(0, 2, pi.size)])
    np.savetxt(base / "parts" / "part_locs.txt", locs, fmt=["%d", "%d", "%.1f", "%.1f", "%d"])
    (root / "attributes.txt").write_text("".join(f"{a} has_g{a // 10}::v{a}\n" for a in range(1, n_attr + 1)))
    (base / "attributes" / "certainties.txt").write_text("1 not visible\n2 guessing\n3 probably\n4 definitely\n")
    ai, aa = np.meshgrid(ids, np.arange(1, n_attr + 1), indexing="ij")
    rows = np.column_stack([ai.ravel(), aa.ravel(), rng.integers(0, 2, ai.size), rng.integers(1, 5, ai.size),
                            rng.uniform(0, 30, ai.size)])
    path = base / "attributes" / "image_attribute_labels.txt"
    np.savetxt(path, rows, fmt=["%d", "%d", "%d", "%d", "%.3f"])
    text = path.read_text().splitlines()  # a few malformed rows with an extra field, as in the real file
    for k in (100, 200000, 3000000):
        text[k] = text[k] + " 0"
    path.write_text("\n".join(text) + "\n")
    np.savetxt(base / "attributes" / "class_attribute_labels_continuous.txt",
               rng.uniform(0, 100, (n_classes, n_attr)), fmt="%.12f")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        root = make_synthetic(tmp / "birds", classes=10, images_per_class=30, size=128, seed=0)
        t_gen = time.perf_counter() - t0
        print(f"make_synthetic 10 classes x 30 images at 128 px: {t_gen:.2f} s ({300 / t_gen:.0f} images/s)")

        for size in (64, 224):
            ds = load_dataset("cub", root, split="trainval", image_size=size)
            t0 = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            dt = time.perf_counter() - t0
            ds_a = load_dataset("cub", root, split="trainval", image_size=size, augment=True)
            t0 = time.perf_counter()
            for i in range(len(ds_a)):
                ds_a[i]
            dta = time.perf_counter() - t0
            print(f"ImageDataset[{size}px] one process: {len(ds) / dt:.0f} items/s plain, "
                  f"{len(ds) / dta:.0f} items/s augmented (augmentation costs x{dta / dt:.2f})")

        t0 = time.perf_counter()
        write_cub_scale_tables(tmp / "cubscale")
        print(f"wrote CUB-scale tables (11788 images, 3.68M attribute rows) in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        ann = read_cub_annotations(tmp / "cubscale")
        dt = time.perf_counter() - t0
        print(f"read_cub_annotations at CUB scale: {dt:.2f} s -> is_present {ann.is_present.shape}, "
              f"part_locs {ann.part_locs.shape}")


if __name__ == "__main__":
    main()
