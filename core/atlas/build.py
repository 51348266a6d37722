"""Build an atlas from a checkpoint (FORMATS.md §4).

Two streaming passes, each one forward pass over its split:
1. training split: every prototype's k nearest patches (`core.explain.nearest`);
2. heatmap split (test by default): the test accuracy, and for N chosen images (stratified
   by class, seeded) the activation map of the prototype contributing most to the image's
   TRUE class — the map behind the class the image should get, which is what a saliency
   question about "the feature the model uses" should show.
The same training pass gives ProtoPShare's data-dependent similarity for the
candidate pairs of consistency studies (`core.protopshare`), next to the Euclidean ones.
The CPU work per image (decode the original file, overlay, PNG encode, write) runs in a
thread pool while the model works on the next batch, so building costs little more than
the forward passes. Each heatmap also gets its participant's stimulus: the original
image's crop at `stimulus_side` px with the map upsampled to it (`overlay.render_stimulus`). Names come from `core.naming` when a CUB root is given. Everything
is written through `AtlasWriter` (temporary folder, validated, renamed).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from core.architectures import architecture
from core.atlas.format import AtlasWriter, empty_manifest
from core.atlas.predictions import PredictionOptions, predictions_section, spread_over_classes
from core.device import resolve_device
from core.errors import DataError
from core.explain import overlay as ov
from core.explain.local import explain_batch_terms
from core.explain.nearest import nearest_patches, patch_boxes
from core.protopshare.pairs import pairs_from_similarities
from core.protopshare.similarity import data_dependent_similarity, euclidean_similarity


@dataclass
class AtlasOptions:
    images: int = 30                 # heatmap images (saliency stimuli)
    stimulus_side: int = ov.STIMULUS_SIDE  # longer side of a rendered stimulus (px)
    heatmaps_per_image: int = 1      # top contributing prototypes per image
    heatmap_split: str = "test"
    nearest_split: str = "train"
    k: int = 5
    class_specific: bool = False     # nearest patches only from the prototype's classes
    batch_size: int = 64
    workers: int = 0                 # DataLoader workers
    threads: int = 4                 # image encoding threads
    device: str | None = None
    seed: int = 0
    pairs: int = 50                  # Euclidean candidate pairs kept
    test_accuracy: bool = True       # forward the whole heatmap split to measure accuracy
    cub_root: str | None = None      # name prototypes from CUB attributes
    naming_rules: object = None      # core.naming.rules.NamingRules
    progress: bool = False
    predictions: int = 40            # test images of the `predictions` section (0: none); core/atlas/predictions.py
    prediction_k: int = 4            # top classes per prediction (HIVE's distinction task shows 4)
    prediction_per_class: int = 5    # evidence prototypes stored per class


def read_original(path: Path) -> np.ndarray:
    """The original image file as RGB uint8 (boxes and overlays live in its pixels)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DataError(f"unreadable image: {path}")
    return img[..., ::-1]


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise DataError("could not encode a PNG")
    return buf.tobytes()


def choose_images(labels: np.ndarray, n: int, seed: int) -> list[int]:
    """n indices spread over the classes, sorted."""
    return sorted(spread_over_classes(labels, n, seed))


def candidate_pairs(model, presence: torch.Tensor, eligible_ids: list[int], n: int) -> dict:
    """FORMATS §4 `pairs`: the n most similar pairs by ProtoPShare's data-dependent
    similarity (over the per-image presences (N, M) of the nearest-patch pass: the max of
    each prototype's map, for ProtoPool/ProtoPNet g(min d)) and by Euclidean distance of the
    prototype vectors (none when the architecture has no `prototype_vectors`, e.g. PIP-Net),
    among `eligible_ids`: the prototypes in use that have nearest patches (a prototype
    that serves no class has no part in any decision, so a consistency question on it
    asks about nothing the model does; core.protopshare's rules: identical prototypes are
    left out, the two lists are disjoint)."""
    if n <= 0 or len(eligible_ids) < 2:
        return {"data_dependent": [], "euclidean": []}
    eligible = torch.zeros(model.num_prototypes, dtype=torch.bool)
    eligible[torch.as_tensor(eligible_ids, dtype=torch.long)] = True
    vectors = model.prototype_vectors()
    return pairs_from_similarities(data_dependent_similarity(presence),
                                   None if vectors is None else euclidean_similarity(vectors), n, eligible)


class _Images:
    """Copies original images into the atlas once each, in worker threads."""

    def __init__(self, writer: AtlasWriter, pool: ThreadPoolExecutor):
        self.writer, self.pool, self.futures = writer, pool, []
        self.submitted: set[int] = set()

    def add(self, image_id: int, path: Path) -> str:
        image_id = int(image_id)
        if image_id not in self.submitted:
            self.submitted.add(image_id)
            self.futures.append(self.pool.submit(self._copy, image_id, path))
        return f"images/{image_id}.png"

    def _copy(self, image_id: int, path: Path) -> None:
        if not self.writer.has_image(image_id):
            self.writer.add_image(image_id, png_bytes(read_original(path)))

    def wait(self) -> None:
        for f in self.futures:
            f.result()
        self.futures = []


def _heatmap_job(writer: AtlasWriter, dataset, index: int, items: list[tuple[int, np.ndarray]], label: int,
                 stimulus_side: int = ov.STIMULUS_SIDE) -> list[dict]:
    record = dataset.records[index]
    rgb = read_original(record.path)
    crop = dataset.geometry(index).crop
    image_rel = (f"images/{int(record.image_id)}.png" if writer.has_image(record.image_id)
                 else writer.add_image(record.image_id, png_bytes(rgb)))
    out = []
    for proto, act in items:
        hid = f"p{proto:04d}_i{record.image_id}"
        picture, box = ov.overlay_on_original(rgb, act, crop)
        # the participant's stimulus: the original pixels of the crop at stimulus_side, map upsampled to it
        shown, shown_overlay, region = ov.render_stimulus(rgb, act, crop, stimulus_side)
        stimulus = {"image": writer.add_file(f"stimuli/{hid}.png", png_bytes(shown)),
                    "overlay": writer.add_file(f"stimuli/{hid}_overlay.png", png_bytes(shown_overlay)),
                    "region": [int(v) for v in region]}
        out.append({"id": hid, "image_id": int(record.image_id), "image": image_rel,
                    "overlay": writer.add_overlay(hid, png_bytes(picture)), "map": writer.add_map(hid, act),
                    "prototype": int(proto), "label": int(label), "box": [int(v) for v in box],
                    "stimulus": stimulus})
    return out


@torch.inference_mode()
def heatmap_pass(model, dataset, chosen: list[int], writer: AtlasWriter, pool: ThreadPoolExecutor,
                 opts: AtlasOptions, device, predicted: np.ndarray | None = None) -> tuple[list[dict], float | None]:
    """Forward the heatmap split (or only the chosen images); returns entries and accuracy.
    `predicted` (one slot per image of the split), when given, receives each forwarded image's
    top-1 class (the `predictions` section reuses them instead of a second pass)."""
    chosen_set = set(chosen)
    indices = list(range(len(dataset))) if opts.test_accuracy else sorted(chosen)
    subset = torch.utils.data.Subset(dataset, indices)
    loader = torch.utils.data.DataLoader(subset, batch_size=opts.batch_size, shuffle=False,
                                         num_workers=opts.workers)
    if opts.progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc="heatmaps", unit="batch")
    correct = total = 0
    futures = []
    for images, labels, index in loader:
        out, layer = explain_batch_terms(model, images.to(device, non_blocking=True))
        logits, sim, slots, weight = out.logits, out.similarities, layer.routing, layer.weight.float()
        labels = labels.to(device)
        if predicted is not None:
            predicted[index.numpy()] = logits.argmax(1).cpu().numpy()
        correct += int((logits.argmax(1) == labels).sum())
        total += int(labels.numel())
        rows = [b for b, i in enumerate(index.tolist()) if i in chosen_set]
        if not rows:
            continue
        rows_t = torch.tensor(rows, device=device)
        slot_scores = sim[rows_t].float() @ slots.float().t()                  # (R, J)
        contrib = slot_scores * weight[labels[rows_t]]                         # (R, J) to the true class
        top = torch.topk(contrib, min(opts.heatmaps_per_image, contrib.shape[1]), dim=1).indices
        protos = slots.argmax(dim=1)[top]                                      # (R, T)
        maps = out.maps[rows_t].float()                                        # (R, M, H, W)
        for r, b in enumerate(rows):
            items, seen = [], set()
            for proto in protos[r].tolist():
                if proto not in seen:
                    seen.add(proto)
                    items.append((proto, maps[r, proto].cpu().numpy().astype(np.float32)))
            futures.append(pool.submit(_heatmap_job, writer, dataset, int(index[b]), items, int(labels[b]),
                                       opts.stimulus_side))
    entries = [e for f in futures for e in f.result()]
    return entries, (correct / total if opts.test_accuracy and total else None)


def last_val_accuracy(history) -> float | None:
    for row in reversed(history or []):
        if isinstance(row, dict) and row.get("val_accuracy") is not None:
            return float(row["val_accuracy"])
    return None


def build_atlas_from_model(model, meta: dict, train_ds, heat_ds, out, *, method: str | None = None,
                           name: str | None = None, opts: AtlasOptions | None = None, checkpoint=None,
                           data_root=None, overwrite: bool = False, image_set: dict | None = None) -> Path:
    """Everything but loading: the model and the two data sets are given. `image_set`: the
    identity of the whole data set (core/atlas/identity.py); default: of these two splits."""
    from core.atlas.identity import image_set_identity

    opts = opts or AtlasOptions()
    out = Path(out)
    device = resolve_device(opts.device)
    model = model.to(device).eval()
    arch = model.config.architecture
    class_names = list(meta.get("class_names") or train_ds.class_names)
    doc = empty_manifest(name or out.name, method or architecture(arch).label,
                         getattr(train_ds, "name", "") or "dataset", class_names)
    doc["dataset"]["image_set"] = image_set or image_set_identity([train_ds, heat_ds])
    doc["model"] = meta.get("config")
    doc["created_from"] = {"checkpoint": str(checkpoint) if checkpoint else None,
                           "data_root": str(data_root) if data_root else None, "seed": int(opts.seed)}
    namer = None
    if opts.cub_root:  # read the annotations first: a bad root fails before the long passes
        from core.data.cub import read_cub_annotations
        from core.naming.naming import Namer
        from core.naming.rules import NamingRules
        namer = Namer(read_cub_annotations(opts.cub_root), opts.naming_rules or NamingRules.for_k(opts.k))
    threads = max(1, min(opts.threads, os.cpu_count() or 1))
    with AtlasWriter(out, overwrite=overwrite) as writer, ThreadPoolExecutor(threads) as pool:
        images = _Images(writer, pool)
        presence: list[torch.Tensor] = []   # (N, M) max activation per image, for the data-dependent pairs
        near = nearest_patches(model, train_ds, k=opts.k, batch_size=opts.batch_size, device=device,
                               num_workers=opts.workers, class_specific=opts.class_specific, progress=opts.progress,
                               on_batch=lambda p, _: presence.append(p.cpu()))
        classes = model.prototype_classes()
        records = {int(r["prototype"]): r for r in (meta.get("projection") or []) if r}
        paths = {int(r.image_id): r.path for ds in (train_ds, heat_ds) for r in ds.records}
        prototypes = []
        for p in range(model.num_prototypes):  # images are copied by the pool meanwhile
            nearest = []
            for patch in patch_boxes(near, train_ds, p):
                rel = images.add(patch["image_id"], train_ds.records[patch["index"]].path)
                closeness = {key: patch[key] for key in ("distance", "similarity") if key in patch}
                nearest.append({"image_id": patch["image_id"], "image": rel, "box": patch["box"],
                                **closeness, "cell": patch["cell"], "cell_box": patch["cell_box"]})
            source = None
            rec = records.get(p)
            if rec is not None and int(rec["image_id"]) in paths:
                source = {"image_id": int(rec["image_id"]), "image": images.add(int(rec["image_id"]),
                                                                                 paths[int(rec["image_id"])]),
                          "cell": [int(v) for v in rec["cell"]], "box": [float(v) for v in rec["box"]]}
            prototypes.append({"id": p, "classes": [int(c) for c in classes[p]], "source": source,
                               "nearest": nearest, "name": None, "naming": None})

        chosen = choose_images(heat_ds.labels, opts.images, opts.seed) if opts.images > 0 else []
        predicted = np.full(len(heat_ds), -1, dtype=np.int64) if opts.predictions > 0 and opts.test_accuracy else None
        heat_entries, test_acc = heatmap_pass(model, heat_ds, chosen, writer, pool, opts, device, predicted)
        if namer is not None:
            for entry in prototypes:
                if entry["nearest"]:
                    evidence = namer.name(entry["id"], entry["nearest"])
                    entry["name"], entry["naming"] = evidence["name"], evidence
            doc["naming_rules"] = namer.rules.to_dict()
        if opts.predictions > 0:   # HIVE's tasks and prototype-query similarity (FORMATS.md §4 `predictions`)
            popts = PredictionOptions(images=opts.predictions, k=opts.prediction_k, per_class=opts.prediction_per_class,
                                      batch_size=opts.batch_size, workers=opts.workers, seed=opts.seed,
                                      progress=opts.progress)
            doc["predictions"] = predictions_section(model, heat_ds, writer, prototypes, popts, device,
                                                     read_original, png_bytes, predicted=predicted)
        images.wait()
        in_use = model.prototypes_in_use().cpu()
        pairable = [e["id"] for e in prototypes if e["nearest"] and bool(in_use[e["id"]])]
        doc["pairs"] = candidate_pairs(model, torch.cat(presence), pairable, opts.pairs)
        doc["prototypes"] = prototypes
        doc["heatmaps"] = sorted(heat_entries, key=lambda e: e["id"])
        doc["accuracy"] = {"val": last_val_accuracy(meta.get("history")), "test": test_acc}
        doc["heatmap_choice"] = {"split": opts.heatmap_split, "images": len(chosen),
                                 "per_image": opts.heatmaps_per_image,
                                 "rule": "prototype with the largest contribution to the true class"}
        writer.commit(doc)
    return out


def build_atlas(checkpoint, out, *, data_root=None, method: str | None = None, name: str | None = None,
                opts: AtlasOptions | None = None, overwrite: bool = False) -> Path:
    """Load a checkpoint and its data set (config's data section, root overridable) and build."""
    from core.training.checkpoint import load_checkpoint
    from core.training.data import checkpoint_dataset

    opts = opts or AtlasOptions()
    if Path(out).exists() and not overwrite:
        from core.errors import FormatError
        raise FormatError(f"{out}: already exists (choose another name or pass --overwrite)")
    model, meta = load_checkpoint(checkpoint, map_location="cpu")
    train_ds = checkpoint_dataset(meta, opts.nearest_split, root=data_root, num_classes=model.num_classes,
                                  source=str(checkpoint))
    heat_ds = checkpoint_dataset(meta, opts.heatmap_split, root=data_root, source=str(checkpoint))
    from core.atlas.identity import checkpoint_identity

    identity = checkpoint_identity(meta, root=data_root, source=str(checkpoint))
    return build_atlas_from_model(model, meta, train_ds, heat_ds, out, method=method, name=name, opts=opts,
                                  checkpoint=checkpoint, data_root=train_ds.root, overwrite=overwrite,
                                  image_set=identity)
