"""ProtoPool / ProtoPNet training objective (SPEC section 1), vectorised over classes,
slots and prototypes (no Python loops): CE + 0.8 cluster - 0.08 separation
+ 1.0 orthogonality + 1e-4 L1 by default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from core.errors import UserFacingError
from core.model.base import ModelOutput, PrototypeModel

_BIG = 1e9


@dataclass
class LossWeights:
    cross_entropy: float = 1.0
    cluster: float = 0.8
    separation: float = -0.08
    orthogonality: float = 1.0      # 0 switches the term off (ablation "w/o L_orth")
    l1: float = 1e-4
    # what L_orth is computed on: "probabilities" = the noise-free slot distributions
    # softmax(q) at temperature 1 (SPEC 1: "on the slot distributions"), "assignment" = the
    # y of this pass (the Gumbel-softmax sample softmax(q / tau + eta); its gradient is noisy
    # at tau = 1 and 0 once tau is small), "logits" = the authors' code (cosine of the raw
    # logits q, diagonal included, minus 1). Default "probabilities": measured in
    # docs/DEVIATIONS.md (bench/bench_slot_dynamics.py: classes holding one prototype in two
    # slots, the term's gradient at small tau)
    orthogonality_on: str = "probabilities"
    # the form of the cluster and separation costs with a slot assignment (the paper gives
    # only their weights): "topk" = the authors' `dist_loss`, masks from the top-K (cluster)
    # and bottom M-K (separation) prototypes of the DETACHED per-class assignment sum_k y,
    # so no gradient reaches the slot logits; "differentiable" = cluster through y
    # (min over the class's slots of sum_i y_i d_i), separation with the detached argmax
    # mask. Default "topk": measured in docs/DEVIATIONS.md (the differentiable cluster sent
    # the slot logits ~4x the gradient of L_orth)
    cluster_separation: str = "topk"

    ORTHOGONALITY_FORMS = ("assignment", "logits", "probabilities")
    CLUSTER_FORMS = ("topk", "differentiable")
    _TEXT_FIELDS = ("orthogonality_on", "cluster_separation")

    @classmethod
    def from_dict(cls, data: dict, where: str = "loss") -> LossWeights:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise UserFacingError(f"{where}.{key}: unknown field; known: {', '.join(sorted(known))}")
        values = {k: (str(v) if k in cls._TEXT_FIELDS else float(v)) for k, v in data.items()}
        out = cls(**values)
        out.check(where)
        return out

    def check(self, where: str = "loss") -> None:
        if self.orthogonality_on not in self.ORTHOGONALITY_FORMS:
            raise UserFacingError(f"{where}.orthogonality_on: {self.orthogonality_on!r} is not one of "
                                  f"{', '.join(self.ORTHOGONALITY_FORMS)}")
        if self.cluster_separation not in self.CLUSTER_FORMS:
            raise UserFacingError(f"{where}.cluster_separation: {self.cluster_separation!r} is not one of "
                                  f"{', '.join(self.CLUSTER_FORMS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def soft_targets(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer labels (B,) or soft targets (B, C) -> (B, C) float."""
    if targets.dim() == 1:
        return F.one_hot(targets.long(), num_classes).float()
    return targets.float()


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CE with integer labels or mixup soft targets."""
    if targets.dim() == 1:
        return F.cross_entropy(logits.float(), targets.long())
    return -(targets.float() * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def cluster_cost(min_distances: torch.Tensor, targets: torch.Tensor, class_mask: torch.Tensor,
                 assignment: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, the smallest distance to a prototype of its class, target-weighted.

    With a slot assignment y (C, K, M) the paper's differentiable form is used: slot
    distance sum_i y_{c,k,i} d_i, minimised over the class's slots. Without one, the
    class mask (C, M) picks the class's prototypes.
    """
    if assignment is not None:
        slot_dist = torch.einsum("bm,ckm->bck", min_distances, assignment.to(min_distances.dtype))
        per_class = slot_dist.amin(dim=2)                                   # (B, C)
    else:
        masked = min_distances[:, None, :].masked_fill(~class_mask[None], _BIG)
        per_class = masked.amin(dim=2)
    return (targets * per_class).sum(dim=1).mean()


def separation_cost(min_distances: torch.Tensor, targets: torch.Tensor, class_mask: torch.Tensor) -> torch.Tensor:
    """Per image, the smallest distance to a prototype NOT of its class (weight is negative)."""
    masked = min_distances[:, None, :].masked_fill(class_mask[None], _BIG)  # (B, C, M)
    per_class = masked.amin(dim=2)
    per_class = torch.where(per_class >= _BIG, torch.zeros_like(per_class), per_class)
    return (targets * per_class).sum(dim=1).mean()


def topk_masks(assignment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' `dist_loss` masks, (C, M) bool each, from the DETACHED assignment
    (C, K, M): a class's own prototypes are the top K of sum_k y_{c,k,i}; the others for
    separation are the top M-K of K - sum_k y (the M-K least present)."""
    presence = assignment.detach().float().sum(dim=1)                      # (C, M)
    c, k, m = assignment.shape
    k = min(k, m)
    own = torch.zeros(c, m, dtype=torch.bool, device=assignment.device)
    own.scatter_(1, presence.topk(k, dim=1).indices, True)
    other = torch.zeros_like(own)
    if m > k:
        other.scatter_(1, (k - presence).topk(m - k, dim=1).indices, True)
    return own, other


def orthogonality_loss(distributions: torch.Tensor) -> torch.Tensor:
    """sum_c sum_{i<j} cos(y_{c,i}, y_{c,j}) / (C*K) for slot distributions (C, K, M).

    Non-negative distributions: zero exactly when each class's slots have disjoint
    supports (e.g. one-hot slots holding distinct prototypes).
    """
    c, k, _ = distributions.shape
    unit = F.normalize(distributions.float(), dim=2)
    gram = unit @ unit.transpose(1, 2)                                      # (C, K, K)
    off_diagonal = gram.sum() - torch.diagonal(gram, dim1=1, dim2=2).sum()
    return off_diagonal / 2.0 / (c * k)


def orthogonality_loss_code(logits: torch.Tensor) -> torch.Tensor:
    """The authors' code: sum_c sum_{i,j} cos(q_{c,i}, q_{c,j}) / (C*K) - 1 on raw logits
    (C, K, M), diagonal included (it adds exactly 1, removed by the -1)."""
    c, k, _ = logits.shape
    unit = F.normalize(logits.float(), dim=2)
    return (unit @ unit.transpose(1, 2)).sum() / (c * k) - 1.0


def l1_off_class(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 norm of the last-layer weights outside each class's own slots/prototypes."""
    return (weight * mask).abs().sum()


def separation_mask(model: PrototypeModel, assignment: torch.Tensor | None) -> torch.Tensor:
    """(C, M) bool of prototypes counted as the class's own: hard argmax of this pass's y."""
    if assignment is None:
        return model.class_prototype_mask()
    idx = assignment.detach().argmax(dim=2)                                 # (C, K)
    mask = torch.zeros(assignment.shape[0], assignment.shape[2], dtype=torch.bool, device=assignment.device)
    return mask.scatter_(1, idx, True)


def compute_losses(model: PrototypeModel, out: ModelOutput, targets: torch.Tensor,
                   weights: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its (detached) terms. `targets`: labels (B,) or soft targets (B, C)."""
    soft = soft_targets(targets, out.logits.shape[1])
    if out.assignment is not None and weights.cluster_separation == "topk":
        own, other = topk_masks(out.assignment)            # the authors' dist_loss: detached
        cluster = cluster_cost(out.min_distances, soft, own)
        separation = separation_cost(out.min_distances, soft, ~other)
    else:
        mask = separation_mask(model, out.assignment)
        cluster = cluster_cost(out.min_distances, soft, mask, out.assignment)
        separation = separation_cost(out.min_distances, soft, mask)
    terms = {
        "cross_entropy": cross_entropy(out.logits, targets),
        "cluster": cluster,
        "separation": separation,
        "l1": l1_off_class(model.last_layer.weight, model.last_layer_l1_mask()),
    }
    if out.assignment is not None and weights.orthogonality != 0:
        if weights.orthogonality_on == "logits":
            terms["orthogonality"] = orthogonality_loss_code(model.slots.logits)
        elif weights.orthogonality_on == "probabilities":   # noise-free softmax(q), temperature 1
            terms["orthogonality"] = orthogonality_loss(model.slots.probabilities())
        else:   # the distributions this pass trained with (Gumbel sample or softmax(q / tau))
            terms["orthogonality"] = orthogonality_loss(out.assignment)
    else:
        terms["orthogonality"] = out.logits.new_zeros(())
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, {name: value.detach() for name, value in terms.items()}
