"""Local explanation: why is this image class X? (SPEC §3)

For the predicted class (and any other class asked), every input of the model's decision
layer (core.model.contract.DecisionLayer: a slot of ProtoPool, a prototype of ProtoPNet or
PIP-Net) with a non-zero weight: its prototype, the prototype's source patch (from the
projection records, when the architecture projects), its activation map on the image (the
contract's per-patch similarity), similarity × weight = contribution. The contributions add up to the class logit; the
explanation carries both so callers (and the tests) can check. Off-class slots with a
small non-zero weight are listed too (after the class's own), otherwise the sum would
not be the logit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from core.explain import overlay as ov
from core.model.contract import DecisionLayer, ModelOutput


@dataclass
class Contribution:
    prototype: int
    similarity: float          # the slot score / prototype activation g_p fed to h
    weight: float              # last-layer weight from this slot/prototype to the class
    contribution: float        # similarity * weight
    own: bool                  # the class's own slot / prototype
    slot: tuple[int, int] | None = None   # (class, k) of the ProtoPool slot; None for ProtoPNet
    activation_map: np.ndarray | None = None   # (H, W) per-patch similarity on the image (contract maps)
    source: dict | None = None  # projection record of the prototype (image_id, cell, box, ...)
    source_patch: np.ndarray | None = None   # RGB pixels of the source box (when image paths are given)


@dataclass
class ClassExplanation:
    label: int
    class_name: str
    logit: float
    rows: list[Contribution]

    @property
    def total(self) -> float:
        return float(sum(r.contribution for r in self.rows))


@dataclass
class LocalExplanation:
    index: int
    image_id: int | None
    true_label: int | None
    predicted: int
    logits: np.ndarray
    image_rgb: np.ndarray          # the un-normalised model input
    classes: dict[int, ClassExplanation] = field(default_factory=dict)

    def overlay(self, row: Contribution) -> np.ndarray:
        """The row's activation map over the model input (SPEC §3 overlay)."""
        return ov.overlay(self.image_rgb, row.activation_map)

    def box(self, row: Contribution) -> tuple[int, int, int, int]:
        """High-activation box of the row's map, model-input pixels."""
        return ov.map_box(row.activation_map, self.image_rgb.shape[:2])


def _source_index(projection) -> dict[int, dict]:
    out = {}
    for rec in projection or []:
        if rec is not None and "prototype" in rec:
            out[int(rec["prototype"])] = rec
    return out


@torch.inference_mode()
def explain_batch_terms(model, images: torch.Tensor) -> tuple[ModelOutput, DecisionLayer]:
    """The model contract's evidence for a batch, model in eval mode: its `ModelOutput`
    (logits, similarities, maps (B, M, H, W)) and its `DecisionLayer` (weight (C, J),
    routing (J, M): ProtoPool's hard slot assignment, J = C·K, or the identity, J = M)."""
    model.eval()
    return model.evidence(images), model.decision_layer()


def _read_patch(path, box) -> np.ndarray | None:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else np.ascontiguousarray(ov.crop(image[..., ::-1], box))


def explain_image(model, dataset, index: int, *, classes: list[int] | None = None, projection=None,
                  image_paths: dict | None = None, device=None, min_weight: float = 0.0) -> LocalExplanation:
    """Explain item `index` of `dataset`: the predicted class plus `classes`.

    `projection` is the checkpoint's projection records (`meta["projection"]`); with
    `image_paths` ({image_id: path of the original file}) each row also gets the pixels
    of its prototype's source patch.
    """
    device = torch.device(device or next(model.parameters()).device)
    image, label, _ = dataset[index]
    out, layer = explain_batch_terms(model.to(device), image[None].to(device))
    logits, sim = out.logits[0].float().cpu(), out.similarities[0].float().cpu()
    slots, num_slots = layer.routing.float().cpu(), layer.slots_per_class
    slot_scores = slots @ sim                                     # (J,)
    weight = layer.weight.float().cpu()                           # (C, J)
    predicted = int(torch.argmax(logits))
    sources = _source_index(projection)
    maps = out.maps[0].float().cpu().numpy()                      # (M, H, W)
    own_mask = model.class_prototype_mask().cpu() if num_slots is None else None   # (C, M)
    record = dataset.records[index]
    expl = LocalExplanation(index=index, image_id=getattr(record, "image_id", None), true_label=int(label),
                            predicted=predicted, logits=logits.numpy(), image_rgb=dataset.load_rgb(index))
    wanted = [predicted] + [int(c) for c in (classes or []) if int(c) != predicted]
    patches: dict[int, np.ndarray | None] = {}
    for c in wanted:
        rows = []
        for j in torch.nonzero(weight[c].abs() > min_weight).flatten().tolist():
            proto = int(torch.argmax(slots[j]))
            w, s = float(weight[c, j]), float(slot_scores[j])
            if num_slots is not None:
                slot = (j // num_slots, j % num_slots)
                own = slot[0] == c
            else:
                slot, own = None, bool(own_mask[c, proto])
            source = sources.get(proto)
            patch = None
            if source is not None and image_paths and int(source["image_id"]) in image_paths:
                if proto not in patches:
                    patches[proto] = _read_patch(image_paths[int(source["image_id"])], source["box"])
                patch = patches[proto]
            rows.append(Contribution(prototype=proto, similarity=s, weight=w, contribution=s * w, own=own,
                                     slot=slot, activation_map=maps[proto], source=source, source_patch=patch))
        rows.sort(key=lambda r: (not r.own, -abs(r.contribution)))
        name = dataset.class_names[c] if c < len(dataset.class_names) else str(c)
        expl.classes[c] = ClassExplanation(label=c, class_name=name, logit=float(logits[c]), rows=rows)
    return expl
