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
  part location (a stricter check: a box still has background corners);
- names checked against the drawing (synthetic birds only): of the named prototypes'
  agreeing patches, the share whose feature cell is at least `TRUTH_COVER` painted with
  the named part (the drawn regions, redrawn from the data's seed), so a name is
  checked against what the pixels are, not only against the annotated part locations.

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


TRUTH_COVER = 0.15   # a thin leg fills about a fifth of the cell it crosses


def names_against_drawing(records: list[dict], data_root) -> dict:
    """Of the named prototypes' agreeing patches: how many cells show the named part."""
    from core.data.synthetic import redraw_regions
    from core.data.synthetic_draw import PART_REGION, REGIONS

    region_of = {name.split(" ", 1)[-1] if name.startswith(("left ", "right ")) else name: region
                 for name, region in PART_REGION.items()}
    patches = [(r["part"], p) for r in records if r["status"] == "named" for p in r["patches"] if p["part"] == r["part"]]
    maps = redraw_regions(data_root, sorted({p["image_id"] for _, p in patches}))
    right = 0
    for part, p in patches:
        x0, y0, x1, y1 = (int(round(v)) for v in p.get("cell_box") or p["box"])
        cell = maps[p["image_id"]][max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
        if part == "bird":
            painted = cell != REGIONS.index("background")
        else:
            painted = cell == REGIONS.index(region_of[part])
        right += int(cell.size > 0 and painted.mean() >= TRUTH_COVER)
    return {"named_patches": len(patches), "named_patches_on_drawn_part": right / max(len(patches), 1)}


def inconsistent_on_one_region(records: list[dict], data_root) -> dict:
    """Of the inconsistent prototypes: how many have one painted (non-background) region
    covering at least `TRUTH_COVER` of every patch's cell, so that the prototype sits on
    that region and only the nearest-part vote split it, and which parts the votes split
    between ("back/nape": count)."""
    from core.data.synthetic import redraw_regions
    from core.data.synthetic_draw import REGIONS

    bad = [r for r in records if r["status"] == "inconsistent" and r["patches"]]
    maps = redraw_regions(data_root, sorted({p["image_id"] for r in bad for p in r["patches"]}))
    one_region, splits = 0, Counter()
    for r in bad:
        shared = set(range(1, len(REGIONS)))   # code 0 is the background
        for p in r["patches"]:
            x0, y0, x1, y1 = (int(round(v)) for v in p.get("cell_box") or p["box"])
            cell = maps[p["image_id"]][max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
            cover = np.bincount(cell.ravel(), minlength=len(REGIONS)) / max(cell.size, 1)
            shared &= {int(c) for c in np.nonzero(cover >= TRUTH_COVER)[0]}
        if shared:
            one_region += 1
            votes = Counter(p.get("part") or "none" for p in r["patches"]).most_common(2)
            splits["/".join(sorted(name for name, _ in votes))] += 1
    return {"inconsistent": len(bad), "inconsistent_on_one_region": one_region,
            "inconsistent_splits": dict(splits.most_common())}


def naming(model, train, ann, k: int = 5, data_root=None) -> dict:
    """Statuses of the assigned prototypes under the atlas builder's naming rules."""
    from core.explain.nearest import nearest_patches, patch_boxes
    from core.naming.naming import Namer
    from core.naming.rules import NamingRules

    namer = Namer(ann, NamingRules.for_k(k))
    near = nearest_patches(model, train, k=k, batch_size=64, device="cpu")
    classes = model.prototype_classes()
    statuses, records = Counter(), []
    for p in range(model.num_prototypes):
        if not classes[p]:
            continue
        patches = patch_boxes(near, train, p)
        if patches:
            records.append(namer.name(p, patches))
        statuses[records[-1]["status"] if patches else "no_patches"] += 1
    assigned = sum(statuses.values())
    out = {"assigned": assigned, "named": statuses.get("named", 0),
           "named_share": statuses.get("named", 0) / max(assigned, 1), "statuses": dict(statuses)}
    if data_root is not None and (Path(data_root) / "synthetic_truth.json").is_file():
        out.update(names_against_drawing(records, data_root))
        out.update(inconsistent_on_one_region(records, data_root))
    return out


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
    out.update(naming(model, train, ann, data_root=data_root))
    if hasattr(model, "slot_binarisation"):
        out["binarised_slots"] = model.slot_binarisation(0.9)
        out["mean_max_slot_probability"] = float(model.slot_probabilities().detach().amax(dim=-1).mean())
    return out
