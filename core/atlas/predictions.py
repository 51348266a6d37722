"""The atlas's `predictions` section (FORMATS.md §4): what HIVE's distinction and agreement
tasks and the prototype–query similarity task show.

For a set of test images, chosen balanced between correct and incorrect predictions, the
model's top-k classes with their logits, the true class, whether the top-1 prediction is
right, and for each of those classes the prototype evidence behind it: the prototypes with
the largest contribution (similarity × last-layer weight, summed over a prototype's slots),
each with its activation map on the image, the map's high-activation box (SPEC §3: ≥ the 95th
percentile of the upsampled map, original pixels) and the prototype's source patch. The
contributions of all prototypes add up to the class logit (ProtoPool's hard assignment and
ProtoPNet's identity alike); the section stores the shown ones, the remainder (`other`) and
the sum of the negative contributions (`negative`: off-class slots with a negative weight), so
shown ≤ logit − negative.

Every image's top-1 class picks the balanced set (the builder's accuracy pass hands them
over; without it one forward pass here), then the chosen images are forwarded again for
their maps. Written through the atlas's `AtlasWriter`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.explain import overlay as ov
from core.explain.local import explain_batch_terms

RULE = "balanced correct/incorrect top-1 predictions; classes = top-k by logit (+ the true class)"


@dataclass
class PredictionOptions:
    images: int = 40                 # test images in the section (half correct, half incorrect when possible)
    k: int = 4                       # top classes per image (HIVE shows 4)
    per_class: int = 5               # evidence prototypes stored per class (positive contributions only)
    batch_size: int = 64
    workers: int = 0
    seed: int = 0
    progress: bool = False


def source_patch(prototype: dict) -> dict | None:
    """Where a prototype's source patch is shown from: the projection's source image with the
    95th-percentile box of the prototype's map on it (its nearest patch when that is the source
    image, as after projection), else the source's feature-cell box; without a source, the
    nearest patch. None when the prototype has neither."""
    source, nearest = prototype.get("source"), prototype.get("nearest") or []
    if source is not None:
        if nearest and int(nearest[0]["image_id"]) == int(source["image_id"]):
            return {"image_id": int(source["image_id"]), "image": source["image"],
                    "box": [int(v) for v in nearest[0]["box"]]}
        return {"image_id": int(source["image_id"]), "image": source["image"],
                "box": [float(v) for v in source["box"]]}
    if nearest:
        return {"image_id": int(nearest[0]["image_id"]), "image": nearest[0]["image"],
                "box": [int(v) for v in nearest[0]["box"]]}
    return None


def prototype_contributions(layer, sim: torch.Tensor) -> torch.Tensor:
    """(B, C, M) contribution of each prototype to each class: Σ_slots weight × similarity,
    through the model's `DecisionLayer`. Summed over prototypes it is the class logit (hard
    slot assignment / identity; plus the bias of a PIP-Net trained with one)."""
    per_proto = layer.weight.float() @ layer.routing.float()     # (C, M)
    return per_proto[None] * sim.float()[:, None, :]


def choose_balanced(correct: np.ndarray, labels: np.ndarray, n: int, seed: int) -> list[int]:
    """n indices, half with a correct prediction and half with a wrong one where there are
    enough (the other group fills the rest), each half spread over the classes (seeded)."""
    right, wrong = np.flatnonzero(correct), np.flatnonzero(~correct)
    want_wrong = min(len(wrong), n // 2)
    want_right = min(len(right), n - want_wrong)
    want_wrong = min(len(wrong), n - want_right)
    chosen = [int(right[i]) for i in spread_over_classes(labels[right], want_right, seed)]
    chosen += [int(wrong[i]) for i in spread_over_classes(labels[wrong], want_wrong, seed + 1)]
    return sorted(chosen)


def spread_over_classes(labels: np.ndarray, n: int, seed: int) -> list[int]:
    """n indices into `labels`, round-robin over a seeded shuffle of each class (in the order
    drawn; the heatmaps and the `predictions` section both choose with it)."""
    rng = np.random.default_rng(seed)
    per_class = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    rng.shuffle(per_class)
    chosen: list[int] = []
    while len(chosen) < min(n, len(labels)):
        for items in per_class:
            if items and len(chosen) < n:
                chosen.append(int(items.pop(0)))
    return chosen


def _loader(dataset, indices, opts: PredictionOptions, desc: str):
    subset = torch.utils.data.Subset(dataset, list(indices))
    loader = torch.utils.data.DataLoader(subset, batch_size=opts.batch_size, shuffle=False,
                                         num_workers=opts.workers)
    if opts.progress:
        from tqdm import tqdm
        return tqdm(loader, desc=desc, unit="batch")
    return loader


@torch.inference_mode()
def predictions_section(model, dataset, writer, prototypes: list[dict], opts: PredictionOptions, device,
                        read_original, png_bytes, predicted: np.ndarray | None = None) -> dict:
    """FORMATS.md §4 `predictions` for `dataset` (the heatmap split). `prototypes` are the
    atlas's prototype entries (for the source patches); `read_original`/`png_bytes` are the
    builder's image helpers (the original file as RGB; PNG encoding); `predicted`: every
    image's top-1 class when the caller already forwarded the split (else one pass here)."""
    k = max(1, min(int(opts.k), model.num_classes))
    empty = {"k": k, "per_class": int(opts.per_class), "split": "", "rule": RULE, "items": []}
    if opts.images <= 0 or len(dataset) == 0:
        return empty
    if predicted is None or len(predicted) != len(dataset) or bool((predicted < 0).any()):
        predicted = np.zeros(len(dataset), dtype=np.int64)
        for images, _, index in _loader(dataset, range(len(dataset)), opts, "predictions"):
            out, _ = explain_batch_terms(model, images.to(device, non_blocking=True))
            predicted[index.numpy()] = out.logits.argmax(1).cpu().numpy()
    labels = np.asarray(dataset.labels)
    chosen = choose_balanced(predicted == labels, labels, int(opts.images), int(opts.seed))
    sources = {int(p["id"]): source_patch(p) for p in prototypes}
    items = []
    for images, batch_labels, index in _loader(dataset, chosen, opts, "prediction maps"):
        out, layer = explain_batch_terms(model, images.to(device, non_blocking=True))
        sim = out.similarities
        contrib = prototype_contributions(layer, sim).cpu()                 # (B, C, M)
        maps = out.maps.float().cpu().numpy()                               # (B, M, H, W)
        logits = out.logits.float().cpu()
        for b, i in enumerate(index.tolist()):
            items.append(_item(writer, dataset, int(i), int(batch_labels[b]), logits[b], sim[b].float().cpu(),
                               contrib[b], maps[b], k, int(opts.per_class), sources, read_original, png_bytes))
    items.sort(key=lambda e: e["image_id"])
    return {"k": k, "per_class": int(opts.per_class), "split": str(getattr(dataset, "split", "") or ""),
            "rule": RULE, "items": items}


def _item(writer, dataset, index, label, logits, sim, contrib, maps, k, per_class, sources, read_original,
          png_bytes) -> dict:
    record = dataset.records[index]
    image_id = int(record.image_id)
    rgb = read_original(record.path)
    image_rel = (f"images/{image_id}.png" if writer.has_image(image_id)
                 else writer.add_image(image_id, png_bytes(rgb)))
    crop = dataset.geometry(index).crop
    region = ov.crop_region(crop, rgb.shape[:2])
    order = torch.argsort(logits, descending=True).tolist()
    rank = {c: r for r, c in enumerate(order)}
    written: dict[int, tuple[str, list[int]]] = {}   # prototype -> (map path, box), once per image

    def prototype_map(p: int) -> tuple[str, list[int]]:
        if p not in written:
            _, box = ov.map_on_original(maps[p], crop, rgb.shape[:2])
            written[p] = (writer.add_map(f"pred_i{image_id}_p{p:04d}", maps[p]), [int(v) for v in box])
        return written[p]

    def class_entry(c: int) -> dict:
        row = contrib[c]
        positive = [int(p) for p in torch.argsort(row, descending=True).tolist() if float(row[p]) > 0][:per_class]
        evidence = []
        for p in positive:
            path, box = prototype_map(p)
            similarity = float(sim[p])
            evidence.append({"prototype": p, "similarity": similarity,
                             "weight": float(row[p]) / similarity if similarity else 0.0,
                             "contribution": float(row[p]), "box": box, "map": path, "source": sources.get(p)})
        shown = sum(e["contribution"] for e in evidence)
        return {"class": int(c), "rank": int(rank[c]), "logit": float(logits[c]),
                "other": float(float(row.sum()) - shown), "negative": float(row.clamp(max=0).sum()),
                "evidence": evidence}

    top = [class_entry(c) for c in order[:k]]
    return {"image_id": image_id, "image": image_rel, "label": int(label), "predicted": int(order[0]),
            "correct": bool(order[0] == label), "region": [int(v) for v in region], "top": top,
            "truth": None if rank[label] < k else class_entry(label)}
