"""The figures that say whether a trained ProtoPool works (issues 11 and 16).

- test accuracy (hard assignment, held-out test split);
- slot binarisation at temperature 1: the share of slots whose softmax(q) puts more
  than 0.9 on one prototype (the paper's "binarised assignment", measured where it is not
  trivially true, i.e. not at the final temperature);
- naming: the share of assigned prototypes whose 5 nearest training patches get status
  `named` from the CUB-attribute naming (core.naming, the atlas builder's rules);
- localisation: on every test image, the prototype with the largest contribution
  (similarity x last-layer weight) to the predicted class; its activation maximum (the
  centre of the feature cell with the highest similarity, in original pixels) must fall
  inside the bird's box. "On a part" additionally asks that cell to contain a visible
  part location (a stricter check: a box still has background corners).

Used by bench/bench_demo.py and bench/bench_ablations.py; plain numbers in a dict.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch


def _datasets(payload_config: dict, data_root):
    from core.data import load_dataset

    d = payload_config["data"]
    common = dict(image_size=d["image_size"], crop_to_bbox=d["crop_to_bbox"], val_fraction=d["val_fraction"],
                  seed=d["split_seed"])
    train = load_dataset("cub", data_root, split="train", augment=False, **common)
    test = load_dataset("cub", data_root, split="test", **common)
    return train, test


@torch.no_grad()
def localisation(model, test, ann) -> dict:
    """Activation maximum of each test image's top prototype: inside the box / on a part."""
    loader = torch.utils.data.DataLoader(test, batch_size=64, shuffle=False)
    weights = model.last_layer.weight.detach()                                   # (C, C*K) or (C, M)
    inside = on_part = total = correct = 0
    for images, labels, index in loader:
        out = model(images)
        pred = out.logits.argmax(dim=1)
        correct += int((pred == labels).sum())
        sims = model.patch_similarities(images)                                 # (B, M, H, W)
        grid = tuple(int(v) for v in sims.shape[2:4])
        if out.assignment is not None:
            c, k, m = out.assignment.shape
            per_proto = torch.einsum("ck,ckm->cm", weights.reshape(c, c, k)[torch.arange(c), torch.arange(c)],
                                     out.assignment)                            # own-slot weight per prototype
        else:
            per_proto = weights
        for b in range(images.shape[0]):
            contrib = out.similarities[b] * per_proto[pred[b]]
            proto = int(contrib.argmax())
            cell = int(sims[b, proto].flatten().argmax())
            row, col = divmod(cell, grid[1])
            i = int(index[b])
            geom = test.geometry(i)
            x, y = geom.cell_center_original(row, col, grid)
            r = ann.row_of(int(test.records[i].image_id))
            bx0, by0, bx1, by1 = (float(v) for v in ann.bboxes[r])
            inside += int(bx0 <= x <= bx1 and by0 <= y <= by1)
            x0, y0, x1, y1 = geom.cell_to_original_box(row, col, grid)
            locs = ann.part_locs[r]                                              # (P, 3): x, y, visible
            vis = locs[:, 2] > 0
            on_part += int(bool(np.any(vis & (locs[:, 0] >= x0) & (locs[:, 0] <= x1) &
                                           (locs[:, 1] >= y0) & (locs[:, 1] <= y1))))
            total += 1
    return {"test_accuracy": correct / max(total, 1), "in_box": inside / max(total, 1),
            "on_part": on_part / max(total, 1), "pairs": total}


def naming(model, train, ann, k: int = 5) -> dict:
    """Statuses of the assigned prototypes under the atlas builder's naming rules."""
    from core.explain.nearest import nearest_patches, patch_boxes
    from core.naming.naming import Namer
    from core.naming.rules import NamingRules

    namer = Namer(ann, NamingRules.for_k(k))
    near = nearest_patches(model, train, k=k, batch_size=64, device="cpu")
    classes = model.prototype_classes()
    statuses = Counter()
    for p in range(model.num_prototypes):
        if not classes[p]:
            continue
        patches = patch_boxes(near, train, p)
        statuses[namer.name(p, patches)["status"] if patches else "no_patches"] += 1
    assigned = sum(statuses.values())
    return {"assigned": assigned, "named": statuses.get("named", 0),
            "named_share": statuses.get("named", 0) / max(assigned, 1), "statuses": dict(statuses)}


def model_figures(checkpoint, data_root) -> dict:
    """All figures of one checkpoint on the synthetic birds at `data_root`."""
    from core.data.cub import read_cub_annotations
    from core.training.checkpoint import load_checkpoint

    model, meta = load_checkpoint(Path(checkpoint))
    model.eval()
    train, test = _datasets(meta["config"], data_root)
    ann = read_cub_annotations(data_root)
    out = {"similarity": meta["config"]["model"]["similarity"],
           "assignment": meta["config"]["model"]["assignment"]}
    out.update(localisation(model, test, ann))
    out.update(naming(model, train, ann))
    if hasattr(model, "slot_binarisation"):
        out["binarised_slots"] = model.slot_binarisation(0.9)
        out["mean_max_slot_probability"] = float(model.slot_probabilities().detach().amax(dim=-1).mean())
    return out
