"""Prototype projection ("push") of distance-based prototypes: each becomes its nearest training patch.

Batched with a running minimum, so memory is bounded by one batch's (B, M, H*W)
distances, never by the data set. Only patches of images whose class the prototype is
(hard-)assigned to are eligible; prototypes assigned to no class are left untouched.
Ties go to the earliest image and cell, so the result is deterministic. Computed in
float32 so a projected prototype equals the patch vector exactly.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from core.model.similarity import squared_distances


@torch.no_grad()
def project_prototypes(model, dataset, *, batch_size: int = 64, device: str | torch.device = "cpu",
                       num_workers: int = 0, progress: bool = False) -> list[dict | None]:
    """Replace the model's prototypes in place; return one record per prototype (None if
    unassigned): prototype, classes, image_id, index (in `dataset`), label, cell [row, col],
    box [x0, y0, x1, y1] in ORIGINAL image pixels, distance (before projection).
    """
    net = getattr(model, "module", model)
    was_training = net.training
    net.eval()
    device = torch.device(device)
    classes = net.prototype_classes()
    class_mask = net.class_prototype_mask().to(device)             # (C, M)
    protos = net.prototypes.detach().float().to(device)
    m = protos.shape[0]
    best_d = torch.full((m,), float("inf"), device=device)
    best_flat = torch.full((m,), -1, dtype=torch.long, device=device)   # index into (image, cell)
    best_vec = protos.clone()
    grid = None
    seen = 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for images, labels, _ in tqdm(loader, desc="projection", disable=not progress, leave=False):
        images = images.to(device)
        z = net.features(images).float()                           # (B, D, H, W)
        b, d, h, w = z.shape
        grid = (h, w)
        dist = squared_distances(z, protos).flatten(2)              # (B, M, HW)
        allowed = class_mask[labels.to(device)]                     # (B, M)
        dist = dist.masked_fill(~allowed[:, :, None], float("inf"))
        per_proto = dist.permute(1, 0, 2).reshape(m, b * h * w)     # (M, B*HW), image-major
        val, idx = per_proto.min(dim=1)                             # first minimum on ties
        better = val < best_d
        if better.any():
            z_flat = z.permute(0, 2, 3, 1).reshape(b * h * w, d)
            best_d = torch.where(better, val, best_d)
            best_flat = torch.where(better, idx + seen * h * w, best_flat)
            best_vec[better] = z_flat[idx[better]]
        seen += b
    records: list[dict | None] = []
    for i in range(m):
        flat = int(best_flat[i])
        if not classes[i] or flat < 0:
            records.append(None)
            continue
        h, w = grid
        index, cell = divmod(flat, h * w)
        row, col = divmod(cell, w)
        rec = dataset.records[index]
        box = dataset.geometry(index).cell_to_original_box(row, col, (h, w))
        records.append({"prototype": i, "classes": list(classes[i]), "image_id": int(rec.image_id),
                        "index": int(index), "label": int(rec.label), "cell": [int(row), int(col)],
                        "box": [float(v) for v in box], "distance": float(best_d[i])})
    projected = best_flat >= 0
    net.prototypes.data[projected] = best_vec[projected].to(net.prototypes.dtype)
    net.train(was_training)
    return records
