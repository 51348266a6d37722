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
  checked against what the pixels are, not only against the annotated part locations;
- names against the source patch (synthetic birds only): the share of named prototypes
  whose name's every attribute is what the drawing painted under the prototype's own
  source patch (value drawn on that image, and the attribute's region covering at least
  `TRUTH_COVER` of the cell); `names_match_source` below;
- what the birds allow (synthetic birds only, no model): for each painted region and
  image, the feature cell that region covers most; the share of those cells that the
  naming's cell look-up places on the region's own part. It bounds the named share of a
  prototype that detects one region perfectly.

Used by bench/bench_demo.py and bench/bench_ablations.py; plain numbers in a dict. Kept
above core.training and core.explain (it needs the checkpoint loader and the nearest
patches), so neither of those imports the other.
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


def own_connections(layer) -> torch.Tensor:
    """(C, M) the weight of each prototype for each class through the class's own inputs of
    the decision layer (core.model.contract.DecisionLayer): ProtoPool's own slots only (its
    off-class slots are left out), otherwise all of the class's connections."""
    weight = layer.weight.detach()
    if layer.slots_per_class:
        c = weight.shape[0]
        owner = torch.arange(weight.shape[1], device=weight.device) // int(layer.slots_per_class)
        weight = weight * (owner[None, :] == torch.arange(c, device=weight.device)[:, None]).to(weight.dtype)
    return weight @ layer.routing.to(weight.dtype)


@torch.no_grad()
def localisation(model, test, ann) -> dict:
    """Activation maximum of each test image's top prototype: inside the box / on a part."""
    loader = torch.utils.data.DataLoader(test, batch_size=64, shuffle=False)
    per_proto = own_connections(model.decision_layer())                         # (C, M)
    inside = on_part = total = correct = 0
    grid: tuple[int, ...] = ()
    for images, labels, index in loader:
        out = model.evidence(images)
        pred = out.logits.argmax(dim=1)
        correct += int((pred == labels).sum())
        sims = out.maps                                                          # (B, M, H, W)
        grid = tuple(int(v) for v in sims.shape[2:4])
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
            "on_part": on_part / max(total, 1), "pairs": total, "grid": list(grid)}


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


# Where the drawing paints each attribute group (core.data.synthetic_draw.draw_bird): a
# name's attribute can only be seen on a patch whose cell shows one of these regions.
GROUP_REGIONS: dict[str, tuple[str, ...]] = {
    "has_bill_shape": ("beak",), "has_bill_color": ("beak",),
    "has_crown_color": ("crown",), "has_forehead_color": ("crown",), "has_head_pattern": ("crown", "nape", "eye"),
    "has_eye_color": ("eye",), "has_throat_color": ("throat",), "has_nape_color": ("nape",),
    "has_breast_color": ("breast",), "has_breast_pattern": ("breast",),
    "has_belly_color": ("belly",), "has_underparts_color": ("belly",),
    "has_back_color": ("back", "nape"), "has_upperparts_color": ("back",), "has_primary_color": ("back", "nape"),
    "has_wing_color": ("wing",), "has_wing_pattern": ("wing",), "has_wing_shape": ("wing",),
    "has_tail_shape": ("tail",), "has_tail_pattern": ("tail",), "has_upper_tail_color": ("tail",),
    "has_leg_color": ("leg",),
}


def names_match_source(records: list[dict], data_root) -> dict:
    """Does each name say what the drawing painted under the prototype's own source patch?

    The source patch is the prototype's nearest training patch (patch 0: after projection
    the prototype IS that patch, distance 0; it is the patch an atlas shows). A name
    matches when every one of its attributes (`name_attributes`, e.g. has_wing_color::blue)
    (a) is the value the drawing painted on that image (synthetic_truth.json `values`,
    not the simulated annotators' labels) and (b) its group's region (`GROUP_REGIONS`)
    covers at least `TRUTH_COVER` of the source patch's feature cell. A "blue wing" whose
    source cell shows a red-and-white striped tail fails (b). Returns the share of named
    prototypes whose name matches, and the failures (prototype id, name, why)."""
    import json

    from core.data.synthetic import redraw_regions
    from core.data.synthetic_draw import REGIONS

    named = [r for r in records if r["status"] == "named" and r["patches"]]
    truth = json.loads((Path(data_root) / "synthetic_truth.json").read_text(encoding="utf-8"))
    values = {int(im["image_id"]): im["values"] for im in truth["images"]}
    maps = redraw_regions(data_root, sorted({r["patches"][0]["image_id"] for r in named}))
    matched, failures = 0, []
    for r in named:
        src = r["patches"][0]
        x0, y0, x1, y1 = (int(round(v)) for v in src.get("cell_box") or src["box"])
        cell = maps[src["image_id"]][max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
        cover = np.bincount(cell.ravel(), minlength=len(REGIONS)) / max(cell.size, 1)
        why = []
        for attribute in r["name_attributes"]:
            group, value = attribute.split("::", 1)
            drawn = values[src["image_id"]].get(group)
            if drawn != value:
                why.append(f"{attribute}: drawn {drawn}")
            regions = GROUP_REGIONS.get(group, ())
            if not any(cover[REGIONS.index(g)] >= TRUTH_COVER for g in regions):
                shown = ", ".join(f"{REGIONS[i]} {cover[i]:.2f}" for i in np.argsort(-cover)[:2] if cover[i] > 0)
                why.append(f"{attribute}: source cell shows {shown}")
        if why:
            failures.append({"id": r["id"], "name": r["name"], "why": why})
        else:
            matched += 1
    return {"names_match_source": matched / max(len(named), 1), "names_match_source_failures": failures}


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


def region_cells_named(data_root, image_size: int = 64, grid: int | tuple[int, int] = 8, crop_to_bbox: bool = True,
                       every: int = 5, min_cover: float = 0.3) -> dict:
    """For each painted region of every `every`-th image, the feature cell it covers most
    (at least `min_cover` of the cell): the share of those cells whose part under the
    naming's cell look-up (`Namer.part_of_patch(cell=True)`, default rules) is the region's
    own part, overall and per region. Five such cells of one region agree on its part
    (4 of 5) with probability `p^5 + 5 p^4 (1 - p)` for the region's share p. The same
    share over every cell that one region covers at least half of (`..._any`) is lower:
    a prototype whose patches sit anywhere on a large region (wing, back) gets less.

    The cells are the model's (`image_size` pixels, a `grid` of cells (rows, columns or
    one int), cropped to the box as in training), so this measures the birds at the
    resolution the naming sees.
    """
    from core.data.cub import read_cub_annotations
    from core.data.geometry import Geometry, crop_box_for
    from core.data.synthetic import redraw_regions
    from core.data.synthetic_draw import REGIONS
    from core.naming.naming import Namer
    from core.naming.rules import NamingRules

    ann = read_cub_annotations(data_root)
    namer = Namer(ann, NamingRules.for_k(5))
    ids = [int(i) for i in ann.image_ids[::max(1, int(every))]]
    maps = redraw_regions(data_root, ids)
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    hits: Counter = Counter()
    cells: Counter = Counter()
    any_hits: Counter = Counter()
    any_cells: Counter = Counter()
    for image_id in ids:
        row, painted = ann.row_of(image_id), maps[image_id]
        h, w = painted.shape
        geometry = Geometry(crop_box_for(ann.bboxes[row], (w, h), crop_to_bbox), image_size)
        best: dict[int, tuple[float, str | None]] = {}
        for r in range(gh):
            for c in range(gw):
                box = geometry.cell_to_original_box(r, c, (gh, gw))
                x0, y0, x1, y1 = (int(round(v)) for v in box)
                cell = painted[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
                if cell.size == 0:
                    continue
                cover = np.bincount(cell.ravel(), minlength=len(REGIONS)) / cell.size
                if not (cover[1:] >= min(min_cover, 0.5)).any():
                    continue
                part = namer.part_of_patch(row, box, cell=True)["part"]
                for code in np.flatnonzero(cover[1:] >= min_cover) + 1:
                    if cover[code] > best.get(int(code), (0.0, None))[0]:
                        best[int(code)] = (float(cover[code]), part)
                for code in np.flatnonzero(cover[1:] >= 0.5) + 1:
                    any_cells[REGIONS[code]] += 1
                    any_hits[REGIONS[code]] += int(part == REGIONS[code])
        for code, (_, part) in best.items():
            cells[REGIONS[code]] += 1
            hits[REGIONS[code]] += int(part == REGIONS[code])
    share = sum(hits.values()) / max(sum(cells.values()), 1)
    return {"region_cells_named": share, "region_cells_named_by_region": {k: hits[k] / cells[k] for k in sorted(cells)},
            "region_cells_named_any": sum(any_hits.values()) / max(sum(any_cells.values()), 1),
            "region_cells_named_any_by_region": {k: any_hits[k] / any_cells[k] for k in sorted(any_cells)}}


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
        out.update(names_match_source(records, data_root))
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
    model_config = meta["config"]["model"]
    out = {"architecture": model_config.get("architecture", "protopool"),
           "similarity": model_config.get("similarity"), "assignment": model_config.get("assignment")}
    out.update(localisation(model, test, ann))
    out.update(naming(model, train, ann, data_root=data_root))
    if (Path(data_root) / "synthetic_truth.json").is_file():
        d = meta["config"]["data"]
        out.update(region_cells_named(data_root, image_size=d["image_size"], grid=tuple(out["grid"]),
                                      crop_to_bbox=d["crop_to_bbox"]))
    out.update(model.summary())   # architecture figures (ProtoPool: binarised slots)
    return out
