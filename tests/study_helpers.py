"""Tiny atlases (FORMATS.md §4) and specs for the study tests, made with PIL + numpy.

Every image file carries PNG text chunks and an EXIF-free tEXt naming the method, so the
blinding tests can prove the study engine strips them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, PngImagePlugin


def _png(path: Path, arr: np.ndarray, secret: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"made by {secret}")
    info.add_text("Software", secret)
    Image.fromarray(arr).save(path, pnginfo=info)


def make_atlas(root: Path, name: str, method: str, dataset: str = "birds", *, n_images: int = 40,
               n_prototypes: int = 24, n_pairs: int = 10, seed: int = 0, size: int = 96,
               image_set: str | None = "") -> Path:
    """Write an atlas folder with `n_images` heatmaps, prototypes with 5 nearest patches,
    and `n_pairs` pairs per source (data-dependent / Euclidean; the first pair is in both).
    `image_set`: what its image-set identity is derived from (default: the data set name,
    so atlases of one data set explain the same images); None: no identity (an old atlas)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("images", "maps", "overlays"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    heatmaps = []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n_images):
        image_id = 1000 + i
        base = np.zeros((size, size, 3), np.uint8)
        base[...] = rng.integers(0, 255, 3, dtype=np.uint8)
        cx, cy = rng.integers(10, size - 10, 2)
        base[(xx - cx) ** 2 + (yy - cy) ** 2 < 150] = rng.integers(0, 255, 3, dtype=np.uint8)
        _png(root / "images" / f"{image_id}.png", base, f"{method} {name}")
        amap = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 300.0).astype(np.float32)
        heat = np.stack([amap * 255, amap * 80, (1 - amap) * 255], -1)
        overlay = (0.5 * base + 0.3 * heat).clip(0, 255).astype(np.uint8)
        hid = f"p{i % n_prototypes:03d}_i{image_id}"
        _png(root / "overlays" / f"{hid}.png", overlay, f"{method} overlay")
        np.save(root / "maps" / f"{hid}.npy", amap[::14, ::14].copy())
        heatmaps.append({"id": hid, "image_id": image_id, "image": f"images/{image_id}.png",
                         "overlay": f"overlays/{hid}.png", "map": f"maps/{hid}.npy",
                         "prototype": i % n_prototypes, "label": i % 3,
                         "box": [int(cx) - 8, int(cy) - 8, int(cx) + 8, int(cy) + 8]})
    prototypes = []
    for p in range(n_prototypes):
        nearest = []
        for k, img in enumerate(rng.choice(n_images, 5, replace=False)):
            x0, y0 = (int(v) for v in rng.integers(0, size - 24, 2))
            nearest.append({"image_id": 1000 + int(img), "image": f"images/{1000 + int(img)}.png",
                            "box": [x0, y0, x0 + 20, y0 + 20], "distance": float(k)})
        prototypes.append({"id": p, "classes": [p % 3], "source": None, "nearest": nearest,
                           "name": None, "naming": None})
    all_pairs = [(a, b) for a in range(n_prototypes) for b in range(a + 1, n_prototypes)]
    order = rng.permutation(len(all_pairs))
    dd = [all_pairs[j] for j in order[:n_pairs]]
    eu = [dd[0]] + [all_pairs[j] for j in order[n_pairs:2 * n_pairs - 1]]  # dd[0] found by both
    pairs = {
        "data_dependent": [{"a": a, "b": b, "score": 1.0 / (1 + j)} for j, (a, b) in enumerate(dd)],
        "euclidean": [{"a": a, "b": b, "score": 1.0 / (1 + j)} for j, (a, b) in enumerate(eu)],
    }
    manifest = {
        "format": "protoproto-atlas", "version": 1, "name": name, "method": method,
        "dataset": {"name": dataset, "num_classes": 3, "class_names": ["c0", "c1", "c2"]},
        "model": None, "accuracy": {"val": None, "test": None},
        "created_from": {"checkpoint": None, "data_root": None, "seed": seed},
        "prototypes": prototypes, "heatmaps": heatmaps, "pairs": pairs,
    }
    if image_set is not None:
        digest = hashlib.sha256(f"test image set {image_set or dataset}".encode()).hexdigest()
        manifest["dataset"]["image_set"] = {"sha256": digest, "classes": 3, "images": n_images}
    (root / "atlas.json").write_text(json.dumps(manifest, indent=1))
    return root


SALIENCY_METHODS = [("atlas-zeta-pool", "ProtoPoolSecret"), ("atlas-zeta-nofocal", "NoFocalSecret"),
                    ("atlas-zeta-tree", "TreeSecret")]


def make_saliency_setup(tmp: Path, *, n_images: int = 36, datasets=("birds", "cars"), size: int = 96,
                        **spec_extra) -> Path:
    """Atlases for every (data set, method) and a saliency spec using them; returns the spec path."""
    methods = []
    for d, ds in enumerate(datasets):
        for m, (name, method) in enumerate(SALIENCY_METHODS):
            folder = tmp / "atlases" / f"{name}-{ds}"
            make_atlas(folder, f"{name}-{ds}", method, ds, n_images=n_images, seed=10 * d + m, size=size)
            methods.append({"atlas": f"atlases/{name}-{ds}"})
    spec = {"kind": "saliency", "seed": 7, "methods": methods, "pool_size": 30, "items_per_version": 10,
            "versions": 4, "attention": {"count": 2, "max_failures": 0}}
    spec.update(spec_extra)
    path = tmp / "saliency.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def make_consistency_setup(tmp: Path, **spec_extra) -> Path:
    make_atlas(tmp / "atlases" / "atlas-share", "atlas-share", "ShareSecret", "birds", n_pairs=22, seed=3)
    spec = {"kind": "consistency", "seed": 11, "methods": ["atlases/atlas-share"], "pool_size": 20,
            "items_per_version": 5, "versions": 4, "attention": {"count": 1}}
    spec.update(spec_extra)
    path = tmp / "consistency.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
