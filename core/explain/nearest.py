"""The k training patches nearest to each prototype, at most one per image (SPEC §3).

"Nearest" is the model contract's (core.model.contract): the patches whose activation
(`prototype_maps` of the `features`, higher = more similar) is largest. One streaming pass
over the data: per batch, each image's most similar patch to every prototype (max over its
cells, so an image contributes at most one patch), then a vectorised top-k merge of the
running (M, k) table with the batch's (M, B) candidates (`torch.topk` over k + B columns; no
Python loop over prototypes). Memory is the batch plus O(M·k): next to scores, indices and
cells we keep each winner's activation map (M·k·H·W floats), so boxes can be drawn later
without a second pass. Architectures whose prototypes are points in feature space
(`prototype_distances` not None) also get each winner's squared distance recorded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.device import resolve_device
from core.explain import overlay as ov


@dataclass
class NearestPatches:
    """Per prototype, its nearest patches most similar first; padding has index -1, score -inf."""

    scores: np.ndarray      # (M, k) activation of the patch (the prototype's map at its cell)
    indices: np.ndarray     # (M, k) index into the data set, -1 where fewer than k images
    cells: np.ndarray       # (M, k, 2) feature-map cell (row, col) of the patch
    maps: np.ndarray        # (M, k, H, W) activation map of the prototype on that image
    distances: np.ndarray | None = None   # (M, k) squared L2 distance (distance-based architectures only)

    def similarity_map(self, proto: int, j: int) -> np.ndarray:
        """The prototype's activation map on its j-th nearest image (feature grid)."""
        return self.maps[proto, j]

    def valid(self, proto: int) -> list[int]:
        return [j for j in range(self.indices.shape[1]) if self.indices[proto, j] >= 0]


class TopKMerger:
    """Running per-prototype top-k (largest activation) over batches of per-image candidates."""

    def __init__(self, num_prototypes: int, k: int, grid: tuple[int, int], device, distances: bool = False):
        m, (h, w) = num_prototypes, grid
        self.k = k
        self.score = torch.full((m, k), float("-inf"), device=device)
        self.index = torch.full((m, k), -1, dtype=torch.long, device=device)
        self.cell = torch.zeros((m, k), dtype=torch.long, device=device)
        self.maps = torch.zeros((m, k, h, w), device=device)
        self.dist = torch.full((m, k), float("inf"), device=device) if distances else None

    def update(self, sim_maps: torch.Tensor, image_index: torch.Tensor, allowed: torch.Tensor | None = None,
               dist_maps: torch.Tensor | None = None):
        """sim_maps (B, M, H, W); image_index (B,); allowed (B, M) bool or None; dist_maps
        (B, M, H, W) when the merger records distances."""
        b, m, h, w = sim_maps.shape
        flat = sim_maps.reshape(b, m, h * w)
        best, cell = flat.max(dim=2)                                   # (B, M)
        if allowed is not None:
            best = best.masked_fill(~allowed, float("-inf"))
        score = torch.cat([self.score, best.t()], dim=1)               # (M, k + B)
        values, pos = torch.topk(score, self.k, dim=1, largest=True, sorted=True)
        index = torch.cat([self.index, image_index.to(self.index.device)[None, :].expand(m, b)], dim=1)
        cells = torch.cat([self.cell, cell.t()], dim=1)
        maps = torch.cat([self.maps, sim_maps.permute(1, 0, 2, 3).to(self.maps.dtype)], dim=1)
        if self.dist is not None and dist_maps is not None:
            at_cell = torch.gather(dist_maps.reshape(b, m, h * w), 2, cell[:, :, None])[:, :, 0]   # (B, M)
            self.dist = torch.gather(torch.cat([self.dist, at_cell.t().to(self.dist.dtype)], dim=1), 1, pos)
        self.score = values
        self.index = torch.gather(index, 1, pos)
        self.cell = torch.gather(cells, 1, pos)
        self.maps = torch.gather(maps, 1, pos[:, :, None, None].expand(m, self.k, h, w))
        self.index = self.index.masked_fill(self.score == float("-inf"), -1)

    def result(self, grid_w: int) -> NearestPatches:
        cell = self.cell.cpu().numpy()
        return NearestPatches(self.score.cpu().numpy(), self.index.cpu().numpy(),
                              np.stack([cell // grid_w, cell % grid_w], axis=2), self.maps.cpu().numpy(),
                              None if self.dist is None else self.dist.cpu().numpy())


@torch.inference_mode()
def nearest_patches(model, dataset, *, k: int = 5, batch_size: int = 64, device=None, num_workers: int = 0,
                    class_specific: bool = False, progress: bool = False, on_batch=None) -> NearestPatches:
    """Stream `dataset` once and return each prototype's k nearest patches.

    `class_specific=True` only considers images of the classes a prototype serves
    (projection's rule); the default considers all images, as explanations do.
    `on_batch(presence (B, M), labels (B,))`, if given, sees every batch's per-image
    maximum activation of each prototype, so a caller can gather more from the same pass
    (the atlas builder takes ProtoPShare's data-dependent similarity from it).
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    mask = model.class_prototype_mask().to(device) if class_specific else None   # (C, M)
    merger = None
    grid_w = 1
    iterator = loader
    if progress:
        from tqdm import tqdm
        iterator = tqdm(loader, desc="nearest patches", unit="batch")
    for images, labels, index in iterator:
        features = model.features(images.to(device, non_blocking=True))
        sim = model.prototype_maps(features).float()
        dist = model.prototype_distances(features)
        if merger is None:
            grid_w = sim.shape[3]
            merger = TopKMerger(sim.shape[1], k, (sim.shape[2], sim.shape[3]), device, distances=dist is not None)
        allowed = mask[labels.to(device)] if mask is not None else None
        merger.update(sim, torch.as_tensor(index), allowed, None if dist is None else dist.float())
        if on_batch is not None:
            on_batch(sim.flatten(2).amax(dim=2), labels)
    if merger is None:
        raise ValueError("nearest_patches: the data set is empty")
    return merger.result(grid_w)


def patch_boxes(nearest: NearestPatches, dataset, proto: int, percentile: float = ov.BOX_PERCENTILE) -> list[dict]:
    """Nearest patches of one prototype in original pixels.

    `box` is the high-activation box (SPEC §3 display convention, what participants see);
    `distance` the patch's squared distance to the prototype where the architecture has
    distances, else `similarity`, its activation;
    `cell` the feature-map cell (row, col) that IS the patch, and `cell_box` that cell's
    square in original pixels (`Geometry.cell_to_original_box`, clipped to the image),
    which is where the patch lies (the naming step locates parts with it).
    """
    out = []
    grid = tuple(int(v) for v in nearest.maps.shape[2:4])
    for j in nearest.valid(proto):
        i = int(nearest.indices[proto, j])
        geometry = dataset.geometry(i)
        width, height = geometry.original_size
        _, box = ov.map_on_original(nearest.similarity_map(proto, j), geometry.crop, (height, width))
        row, col = (int(v) for v in nearest.cells[proto, j])
        closeness = ({"distance": float(nearest.distances[proto, j])} if nearest.distances is not None
                     else {"similarity": float(nearest.scores[proto, j])})
        out.append({"index": i, "image_id": int(dataset.records[i].image_id), "box": [float(v) for v in box],
                    **closeness, "cell": [row, col],
                    "cell_box": _clipped_box(geometry.cell_to_original_box(row, col, grid), width, height)})
    return out


def _clipped_box(box, width: int, height: int) -> list[float]:
    """`box` rounded to 1/100 px and clipped to a width x height image (never empty)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, y0 = min(max(x0, 0.0), width - 1.0), min(max(y0, 0.0), height - 1.0)
    x1, y1 = max(min(x1, float(width)), x0 + 1.0), max(min(y1, float(height)), y0 + 1.0)
    return [round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2)]
