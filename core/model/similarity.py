"""Patch-prototype distances and the prototype activations `g_p` (SPEC section 1).

Distances use ||z||^2 - 2 z.p + ||p||^2 (one batched matmul) rather than broadcasting
z - p, which would hold a (B, M, D, H, W) tensor. The activation is a registry switch:
"focal" (paper, default), "protopnet" (max) and "focal-code" (authors' code variant).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

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
