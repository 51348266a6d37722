"""PIP-Net's losses as pure functions (paper section 3, authors' pipnet/train.py).

Notation: two augmented views x', x'' of each image in a batch of B; P', P'' (B, M, H, W)
their prototype maps (softmax over the M prototypes per patch); p', p'' (B, M) their
max-pooled presences; o (2B, C) the logits of both views.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ALIGN_EPS = 1e-12   # authors' align_loss
TANH_EPS = 1e-8     # the EPS train_pipnet passes to calculate_loss


def _patches(maps: torch.Tensor) -> torch.Tensor:
    """(B, M, H, W) -> (B*H*W, M): one row per patch."""
    return maps.flatten(start_dim=2).permute(0, 2, 1).flatten(end_dim=1)


def alignment_loss(maps1: torch.Tensor, maps2: torch.Tensor, eps: float = ALIGN_EPS) -> torch.Tensor:
    """L_A = -1/(B H W) sum_{b,h,w} log(z'_{bhw} . z''_{bhw}), symmetrised with stop-gradients.

    z'_{bhw}, z''_{bhw} are the M-vectors of the same patch in the two views (each sums to 1,
    so the dot product is 1 only when both are the same one-hot prototype). As the authors
    compute it: (align(z', sg(z'')) + align(z'', sg(z'))) / 2, where sg stops the gradient,
    so each view is pulled towards the other; the value equals the plain L_A.
    """
    a, b = _patches(maps1), _patches(maps2)

    def one_side(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -torch.log(torch.einsum("nc,nc->n", x, target) + eps).mean()

    return (one_side(a, b.detach()) + one_side(b, a.detach())) / 2.0


def tanh_uniformity_loss(presence: torch.Tensor, eps: float = TANH_EPS) -> torch.Tensor:
    """L_T = -1/M sum_m log(tanh(sum_b p_{bm}) + eps) for one view's presences (B, M).

    Small when every prototype is present (tanh of its summed presence near 1) in at least
    one image of the batch: it keeps all prototypes in use (no collapse onto a few).
    """
    return -torch.log(torch.tanh(presence.sum(dim=0)) + eps).mean()


def two_view_tanh_loss(presence1: torch.Tensor, presence2: torch.Tensor, eps: float = TANH_EPS) -> torch.Tensor:
    """(L_T(p') + L_T(p'')) / 2, the authors' form."""
    return (tanh_uniformity_loss(presence1, eps) + tanh_uniformity_loss(presence2, eps)) / 2.0


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, multiplier: torch.Tensor | float = 2.0
                        ) -> torch.Tensor:
    """L_C = NLL(log_softmax(log(1 + o^k)), y), k the classifier's normalization multiplier (2).

    o >= 0 (non-negative presences and weights); log(1 + o^2) compresses large logits so the
    softmax does not saturate while the class weights grow (authors' train.py; the paper's
    "log(o^2 + 1)"). Both views are classified: `labels` must match the rows of `logits`.
    """
    return F.nll_loss(F.log_softmax(torch.log1p(logits ** multiplier), dim=1), labels)


@dataclass(frozen=True)
class LossWeights:
    """lambda_A, lambda_T, lambda_C of one step (authors' train.py)."""

    align: float
    tanh: float
    classification: float


def pretrain_weights(epoch: int, epochs: int) -> LossWeights:
    """First stage, epoch 1..epochs: lambda_A grows linearly epoch/epochs, lambda_T = 5, no L_C."""
    return LossWeights(align=epoch / epochs, tanh=5.0, classification=0.0)


SECOND_STAGE = LossWeights(align=5.0, tanh=2.0, classification=2.0)
FINETUNE = LossWeights(align=0.0, tanh=0.0, classification=2.0)   # only the classifier trains


def pipnet_loss(maps: torch.Tensor, presence: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                weights: LossWeights, multiplier: torch.Tensor | float = 2.0) -> dict[str, torch.Tensor]:
    """All terms for one forward pass over cat([view1, view2]) (2B rows); `labels` (B,).

    Returns {"loss", "align", "tanh", "classification"} (classification only when its weight
    is > 0). As the authors: with lambda_A = lambda_T = 0 (finetune) the loss is lambda_C L_C alone.
    """
    maps1, maps2 = maps.chunk(2)
    p1, p2 = presence.chunk(2)
    out: dict[str, torch.Tensor] = {"align": alignment_loss(maps1, maps2), "tanh": two_view_tanh_loss(p1, p2)}
    loss = weights.align * out["align"] + weights.tanh * out["tanh"]
    if weights.classification > 0:
        out["classification"] = classification_loss(logits, torch.cat([labels, labels]), multiplier)
        loss = loss + weights.classification * out["classification"]
    out["loss"] = loss
    return out
