"""Patch-prototype distances and the prototype activations `g_p` (SPEC section 1).

Distances use ||z||^2 - 2 z.p + ||p||^2 (one batched matmul) rather than broadcasting
z - p, which would hold a (B, M, D, H, W) tensor. The activation is a registry switch
keyed by the one spelling of each similarity (common.names.SIMILARITIES): "focal"
(paper, default), "protopnet" (max) and "focal-code" (authors' code variant).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from core.errors import UserFacingError


def squared_distances(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) features, (M, D) prototypes -> (B, M, H, W) squared L2 distances >= 0."""
    b, d, h, w = features.shape
    z = features.reshape(b, d, h * w)
    z2 = (z * z).sum(dim=1, keepdim=True)                     # (B, 1, HW)
    p2 = (prototypes * prototypes).sum(dim=1)[None, :, None]  # (1, M, 1)
    zp = torch.matmul(prototypes, z)                          # (B, M, HW)
    dist = (z2 - 2.0 * zp + p2).clamp_min(0.0)
    return dist.reshape(b, prototypes.shape[0], h, w)


def squared_distances_conv(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """The same distances in the official code's form (ProtoPNet's `_l2_convolution`, also in
    ProtoPool/ProtoPShare): 1x1 convolutions with an all-ones kernel for ||z||^2 and with the
    prototypes for z.p, summed as relu(||z||^2 + (-2 z.p + ||p||^2)). Same values up to
    rounding; with this order an imported model reproduces the authors' float32 logits
    bit for bit (same threads, same batch), which matters at their scale (2000
    prototypes: logits near 80, where one float32 step is 7.6e-6)."""
    protos = prototypes[:, :, None, None]
    z2 = F.conv2d(features ** 2, torch.ones_like(protos))
    zp = F.conv2d(features, protos)
    p2 = torch.sum(protos ** 2, dim=(1, 2, 3)).view(-1, 1, 1)
    return F.relu(z2 + (-2 * zp + p2))


DISTANCE_KERNELS = {"matmul": squared_distances, "conv": squared_distances_conv}


def log_similarity(distances: torch.Tensor, epsilon: float = 1e-4) -> torch.Tensor:
    """g(d) = log((d + 1) / (d + eps)), elementwise; large when d is small."""
    return torch.log((distances + 1.0) / (distances + epsilon))


def focal_activation(distances: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Paper's focal similarity: max_z g(z) - mean_z g(z) over the patch grid."""
    sim = log_similarity(distances.flatten(2), epsilon)
    return sim.amax(dim=2) - sim.mean(dim=2)


def protopnet_activation(distances: torch.Tensor, epsilon: float) -> torch.Tensor:
    """ProtoPNet's activation: max_z g(z) = g(min_z d) (g is decreasing)."""
    return log_similarity(distances.flatten(2).amin(dim=2), epsilon)


def focal_code_activation(distances: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Authors' code per prototype: g(min d) - g(mean d), in distance space (not equal to
    the paper's form, Jensen). ProtoPool mixes the distances through the slot weights
    before the log (`ProtoPool.forward`); this per-prototype value is what a one-hot slot
    gives and what explanations show."""
    flat = distances.flatten(2)
    return log_similarity(flat.amin(dim=2), epsilon) - log_similarity(flat.mean(dim=2), epsilon)


ACTIVATIONS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "focal": focal_activation,
    "protopnet": protopnet_activation,
    "focal-code": focal_code_activation,
}


def get_activation(name: str) -> Callable[[torch.Tensor, float], torch.Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise UserFacingError(
            f"model.similarity: unknown similarity {name!r}; known: {', '.join(ACTIVATIONS)}") from None
