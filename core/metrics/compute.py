"""Automatic prototype metrics over a CUB-format split (docs/METRICS.md).

Three passes over the split's images, each one forward of the activation source:
  1. model input cropped to the bounding box (Huang et al.'s protocol): part consistency;
  2. the same images plus clipped Gaussian noise: stability;
  3. uncropped images (PIP-Net's protocol): purity (top-k patches) and the share of
     activation inside the object box.
Passes 1 and 2 share one loading of each batch. Each pass reduces the maps on the device
to a few numbers per (image, prototype), so the cost beyond the forward passes stays
small (bench/bench_metrics.py).

The activation source is anything with `num_prototypes`, `prototype_classes()` and
`maps(images, dataset, index) -> (B, M, h, w)` (higher = more active) for the images at
positions `index` of `dataset`; `ModelSource` wraps a prototype model's
`patch_similarities` (and ignores where the images come from).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from core.errors import DataError, UserFacingError
from core.metrics import regions, scores

METRICS = ("consistency", "stability", "purity", "box_share")


@dataclass
class MetricSettings:
    """Every constant of the definitions; stored with the results."""

    split: str = "test"                 # Huang et al. and PIP-Net report the test split
    reference_size: int = 224           # the size the published constants are given for
    half_size: int = 36                 # Huang: region half-side at 224 px (scaled to the input size)
    part_threshold: float = 0.8         # Huang: consistent when a part is hit in >= 80% of the images
    noise_std: float = 0.2              # Huang: Gaussian noise on the normalised input ...
    noise_clip: float = 0.25            # ... clipped to +-0.25 (their evaluation code)
    purity_k: int = 10                  # PIP-Net: top-10 images per prototype
    purity_patch: int = 32              # PIP-Net: 32 px patch at 224 px (scaled)
    part_related: float = 0.5           # PIP-Net: a prototype is part-related when purity > 0.5
    seed: int = 0                       # noise seed
    metrics: list = field(default_factory=lambda: list(METRICS))

    def scaled(self, value: int, size: int) -> int:
        return max(1, int(round(value * size / self.reference_size)))

    def check(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise UserFacingError(f"--metrics: unknown or empty {unknown or self.metrics}; known: {', '.join(METRICS)}")
        if not 0.0 < self.part_threshold <= 1.0:
            raise UserFacingError(f"--part-threshold must be in (0, 1], got {self.part_threshold}")
        if self.purity_k < 1:
            raise UserFacingError(f"--purity-k must be >= 1, got {self.purity_k}")
        if self.noise_std < 0 or self.noise_clip < 0:
            raise UserFacingError("--noise-std and --noise-clip must be >= 0")


class ModelSource:
    """A prototype model as an activation source: its per-patch log similarities."""

    def __init__(self, model):
        self.model = model.eval()
        self.num_prototypes = int(model.num_prototypes)
        self._classes = model.prototype_classes()

    def prototype_classes(self) -> list[list[int]]:
        return self._classes

    def maps(self, images: torch.Tensor, dataset=None, index=None) -> torch.Tensor:
        return self.model.patch_similarities(images)


@dataclass
class _Split:
    """One view of the split's images with the part locations in its pixels."""

    dataset: object
    labels: np.ndarray          # (N,)
    image_ids: np.ndarray       # (N,)
    part_rc: np.ndarray         # (N, P, 2) int: part pixel (row, col) in model pixels (trunc, as Huang)
    part_xy: np.ndarray         # (N, P, 2) float: original pixels
    visible: np.ndarray         # (N, P) bool
    geometries: list = field(default_factory=list)
    boxes: np.ndarray | None = None        # (N, 4) object box in model pixels (x0, y0, x1, y1)


def _class_prototypes(classes_of: list[list[int]], num_classes: int) -> np.ndarray:
    """(C, Kmax) prototype ids serving each class, padded with -1."""
    per_class = [[] for _ in range(num_classes)]
    for p, cls in enumerate(classes_of):
        for c in cls:
            if 0 <= c < num_classes:
                per_class[c].append(p)
    kmax = max([len(v) for v in per_class] + [0])
    table = -np.ones((num_classes, kmax), dtype=np.int64)
    for c, ps in enumerate(per_class):
        table[c, :len(ps)] = ps
    return table


def _slots_by_prototype(table: np.ndarray, labels: np.ndarray, num_prototypes: int
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each prototype, (image rows, slot positions) of the images whose class it serves."""
    if table.shape[1] == 0:
        empty = np.zeros(0, np.int64)
        return [(empty, empty)] * num_prototypes
    per_image = table[labels]                                   # (N, Kmax)
    n_idx, k_idx = np.nonzero(per_image >= 0)
    protos = per_image[n_idx, k_idx]
    order = np.argsort(protos, kind="stable")
    n_idx, k_idx, protos = n_idx[order], k_idx[order], protos[order]
    bounds = np.searchsorted(protos, np.arange(num_prototypes + 1))
    return [(n_idx[bounds[p]:bounds[p + 1]], k_idx[bounds[p]:bounds[p + 1]]) for p in range(num_prototypes)]


def _prepare(dataset, ann, with_box: bool) -> _Split:
    n = len(dataset)
    n_parts = ann.part_locs.shape[1]
    part_rc = np.zeros((n, n_parts, 2), np.int64)
    part_xy = np.zeros((n, n_parts, 2), np.float64)
    visible = np.zeros((n, n_parts), bool)
    boxes = np.zeros((n, 4), np.float64) if with_box else None
    geometries = []
    for i, rec in enumerate(dataset.records):
        row = ann.row_of(rec.image_id)
        locs = ann.part_locs[row]
        geo = dataset.geometry(i)
        geometries.append(geo)
        model_xy = geo.to_model_points(locs[:, :2])
        part_rc[i, :, 0] = np.trunc(model_xy[:, 1]).astype(np.int64)
        part_rc[i, :, 1] = np.trunc(model_xy[:, 0]).astype(np.int64)
        part_xy[i] = locs[:, :2]
        visible[i] = locs[:, 2] > 0
        if with_box:
            if rec.bbox is None:
                raise DataError(f"image {rec.image_id}: no bounding box (bounding_boxes.txt) for the box share")
            boxes[i] = geo.to_model_box(rec.bbox)
    labels = np.array([r.label for r in dataset.records], np.int64)
    ids = np.array([r.image_id for r in dataset.records], np.int64)
    return _Split(dataset, labels, ids, part_rc, part_xy, visible, geometries, boxes)


def _batches(dataset, batch_size: int, workers: int, progress: bool, desc: str):
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    if progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc=desc, leave=False)
    yield from loader


def _part_hits(source, split: _Split, images: torch.Tensor, labels: torch.Tensor, index: np.ndarray,
               table_t: torch.Tensor, half: int) -> torch.Tensor:
    """(B, Kmax, P) bool: the parts inside each class prototype's peak region."""
    protos = table_t[labels.to(images.device)]                             # (B, Kmax)
    if protos.shape[1] == 0:                                               # no prototype serves any class
        return torch.zeros(len(index), 0, split.visible.shape[1], dtype=torch.bool, device=images.device)
    maps = source.maps(images, split.dataset, index)                       # (B, M, h, w)
    gathered = torch.gather(maps, 1, protos.clamp_min(0)[:, :, None, None].expand(-1, -1, *maps.shape[2:]))
    region = regions.peak_regions(regions.upsample(gathered, images.shape[-1]), half)
    rc = torch.as_tensor(split.part_rc[index], device=images.device)
    vis = torch.as_tensor(split.visible[index], device=images.device)
    return regions.parts_in_regions(region, rc, vis) & (protos >= 0)[:, :, None]


@torch.no_grad()
def _huang_pass(source, split: _Split, table: np.ndarray, half: int, device, batch_size: int, workers: int,
                progress: bool, noise: tuple[float, float, torch.Generator] | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Part hits (N, Kmax, P) of each image's class prototypes, their bit codes (N, Kmax), and
    with `noise` the codes on the noisy images (one loading of each batch serves both)."""
    n, kmax, n_parts = len(split.labels), table.shape[1], split.visible.shape[1]
    hits = np.zeros((n, kmax, n_parts), bool)
    codes = np.zeros((n, kmax), np.int64)
    noisy_codes = np.zeros((n, kmax), np.int64) if noise is not None else None
    table_t = torch.as_tensor(table, device=device)
    desc = "consistency + stability" if noise is not None else "consistency"
    for images, labels, index in _batches(split.dataset, batch_size, workers, progress, desc):
        index = index.numpy()
        inside = _part_hits(source, split, images.to(device), labels, index, table_t, half)
        hits[index] = inside.cpu().numpy()
        codes[index] = regions.pack_bits(inside).cpu().numpy()
        if noise is not None:
            std, clip, gen = noise
            noisy = images + (torch.randn(images.shape, generator=gen) * std).clamp(-clip, clip)
            noisy_inside = _part_hits(source, split, noisy.to(device), labels, index, table_t, half)
            noisy_codes[index] = regions.pack_bits(noisy_inside).cpu().numpy()
    return hits, codes, noisy_codes


def _box_masks(boxes: np.ndarray, size: int, device) -> torch.Tensor:
    """(B, 4) boxes in model pixels -> (B, S, S) bool: pixel centres inside the box."""
    b = torch.as_tensor(boxes, dtype=torch.float64, device=device)
    centres = torch.arange(size, dtype=torch.float64, device=device) + 0.5
    rows = (centres[None, :] >= b[:, 1:2]) & (centres[None, :] < b[:, 3:4])      # (B, S)
    cols = (centres[None, :] >= b[:, 0:1]) & (centres[None, :] < b[:, 2:3])
    return rows[:, :, None] & cols[:, None, :]


@torch.no_grad()
def _full_pass(source, split: _Split, table: np.ndarray, device, batch_size: int, workers: int, progress: bool,
               want_box: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[int, int]]:
    """Per image and prototype: max similarity (N, M), its cell (N, M) and box shares (N, Kmax)."""
    n, m, kmax = len(split.labels), source.num_prototypes, table.shape[1]
    pooled = np.zeros((n, m), np.float32)
    cells = np.zeros((n, m), np.int32)
    shares = np.full((n, kmax), np.nan) if want_box else None
    grid = (0, 0)
    table_t = torch.as_tensor(table, device=device)
    for images, labels, index in _batches(split.dataset, batch_size, workers, progress, "purity / box share"):
        images, index = images.to(device), index.numpy()
        maps = source.maps(images, split.dataset, index)
        grid = tuple(maps.shape[2:])
        flat = maps.flatten(2)
        best, where = flat.max(dim=2)      # torch returns the first maximal index
        pooled[index] = best.float().cpu().numpy()
        cells[index] = where.cpu().numpy()
        if want_box and kmax:
            protos = table_t[labels.to(device)]
            gathered = torch.gather(maps, 1, protos.clamp_min(0)[:, :, None, None].expand(-1, -1, *maps.shape[2:]))
            up = regions.upsample(gathered, images.shape[-1])
            inside = _box_masks(split.boxes[index], images.shape[-1], device)[:, None]
            share = regions.box_share(up, inside)
            share = torch.where(protos >= 0, share, torch.full_like(share, float("nan")))
            shares[index] = share.double().cpu().numpy()
    return pooled, cells, shares, grid


def _purity_of(p: int, pooled: np.ndarray, cells: np.ndarray, split: _Split, part_names: list[str],
               grid: tuple[int, int], settings: MetricSettings) -> dict:
    size = split.dataset.image_size
    k = min(settings.purity_k, len(pooled))
    order = np.argsort(-pooled[:, p], kind="stable")[:k]      # pandas nlargest keeps the first of ties
    patch = settings.scaled(settings.purity_patch, size)
    skip = int(round((size - patch) / (grid[1] - 1))) if grid[1] > 1 else 0
    presence = np.zeros((k, len(part_names)))
    patches = []
    for row_i, n in enumerate(order):
        r, c = divmod(int(cells[n, p]), grid[1])
        h0, h1, w0, w1 = regions.pipnet_patch(r, c, grid, size, patch, skip)
        x0, y0, x1, y1 = split.geometries[int(n)].to_original_box((w0, h0, w1, h1))
        xy = split.part_xy[n]
        presence[row_i] = ((xy[:, 1] >= y0) & (xy[:, 1] <= y1) & (xy[:, 0] >= x0) & (xy[:, 0] <= x1))
        patches.append({"image_id": int(split.image_ids[n]), "box": [round(v, 2) for v in (x0, y0, x1, y1)],
                        "similarity": float(pooled[n, p])})
    merged, vis, names = scores.merge_left_right(presence * split.visible[order], split.visible[order], part_names)
    out = scores.purity(merged, vis, names)
    out["patches"] = patches
    return out


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def compute_metrics(source, crop_dataset, full_dataset, ann, settings: MetricSettings | None = None, *,
                    device="cpu", batch_size: int = 32, workers: int = 0, progress: bool = False) -> dict:
    """Per-prototype and per-model metrics (the `prototypes` and `model` parts of metrics.json).

    crop_dataset: the split cropped to the bounding boxes; full_dataset: uncropped (both
    at the model's input size, same records in the same order); ann: CUB annotations
    with parts (`core.data.cub.read_cub_annotations(root, attributes=False)`).
    """
    settings = settings or MetricSettings()
    settings.check()
    device = torch.device(device)
    wanted = set(settings.metrics)
    if not ann.part_names:
        raise DataError("CUB annotations: no parts (parts/parts.txt, parts/part_locs.txt) for the metrics")
    classes_of = source.prototype_classes()
    num_classes = int(max([c for cls in classes_of for c in cls] + [-1]) + 1)
    num_classes = max(num_classes, int(crop_dataset.num_classes))
    table = _class_prototypes(classes_of, num_classes)
    part_names = list(ann.part_names)
    size = crop_dataset.image_size
    half = settings.scaled(settings.half_size, size)

    hits = codes = noisy_codes = None
    crop_split = None
    if wanted & {"consistency", "stability"}:
        crop_split = _prepare(crop_dataset, ann, with_box=False)
        noise = None
        if "stability" in wanted:
            noise = (settings.noise_std, settings.noise_clip, torch.Generator().manual_seed(int(settings.seed)))
        hits, codes, noisy_codes = _huang_pass(source, crop_split, table, half, device, batch_size, workers,
                                               progress, noise)
    full_split = pooled = cells = shares = None
    grid = (0, 0)
    if wanted & {"purity", "box_share"}:
        full_split = _prepare(full_dataset, ann, with_box="box_share" in wanted)
        pooled, cells, shares, grid = _full_pass(source, full_split, table, device, batch_size, workers, progress,
                                                 "box_share" in wanted)

    labels = (crop_split or full_split).labels
    slots = _slots_by_prototype(table, labels, len(classes_of))
    records = []
    for p, cls in enumerate(classes_of):
        rec: dict = {"id": p, "classes": [int(c) for c in cls]}
        n_idx, k_idx = slots[p]          # images of p's classes, and p's slot among their class prototypes
        rec["n_images"] = int(len(n_idx))
        evaluated = bool(cls) and len(n_idx) > 0
        if "consistency" in wanted:
            rec["consistency"] = None
            if evaluated:
                ok, freq = scores.consistency(hits[n_idx, k_idx], crop_split.visible[n_idx], settings.part_threshold)
                best = int(np.argmax(freq))
                rec["consistency"] = {"consistent": ok, "part": part_names[best] if freq[best] > 0 else None,
                                      "frequency": float(freq[best]),
                                      "part_frequencies": {name: round(float(f), 6) for name, f in zip(part_names, freq)}}
        if "stability" in wanted:
            rec["stability"] = None
            if evaluated:
                rec["stability"] = scores.stability(codes[n_idx, k_idx], noisy_codes[n_idx, k_idx])
        if "box_share" in wanted:
            rec["box_share"] = None
            if evaluated:
                vals = shares[n_idx, k_idx]
                rec["box_share"] = None if np.all(np.isnan(vals)) else float(np.nanmean(vals))
        if "purity" in wanted:
            rec["purity"] = _purity_of(p, pooled, cells, full_split, part_names, grid, settings) if cls else None
        records.append(rec)

    model: dict = {"num_prototypes": len(classes_of),
                   "evaluated_prototypes": sum(1 for r in records if r["classes"] and r["n_images"])}
    if "consistency" in wanted:
        model["consistency_score"] = _mean(float(r["consistency"]["consistent"]) for r in records if r["consistency"])
    if "stability" in wanted:
        model["stability_score"] = _mean(r["stability"] for r in records)
    if "purity" in wanted:
        pur = [r["purity"]["purity"] for r in records if r["purity"]]
        model["purity_mean"] = _mean(pur)
        model["purity_std"] = float(np.std(pur)) if pur else None
        model["part_related_prototypes"] = sum(1 for v in pur if v > settings.part_related)
        model["purity_most_present_mean"] = _mean(r["purity"]["most_present_purity"] for r in records if r["purity"])
    if "box_share" in wanted:
        model["box_share_mean"] = _mean(r["box_share"] for r in records)
    derived = {"input_size": size, "half_size": half if crop_split is not None else None,
               "purity_patch": settings.scaled(settings.purity_patch, size), "feature_grid": list(grid) or None,
               "images": len(labels), "part_names": part_names}
    return {"settings": asdict(settings), "derived": derived, "model": model, "prototypes": records}
