"""Prototype-to-prototype similarities for ProtoPShare (SPEC section 2).

Data-dependent similarity: d_DD(p, q) = 1 / sum_x (g(Z_x, p) - g(Z_x, q))^2 with
g(Z_x, p) the max log-similarity over the patches of image x. Why it is cheap here:
one streaming pass over the data collects the images x prototypes matrix A of those
maxima (`collect_activations`), and then every pair at once follows from one Gram
matrix, sum_x (a_p - a_q)^2 = |a_p|^2 + |a_q|^2 - 2 a_p.a_q, in float64 (the
subtraction cancels, so float32 would lose digits). No Python loop over pairs.

Data-independent baseline: 1 / ||p - q|| (torch.cdist).

The same pass also keeps what merge-pruning needs so it never touches the images again:
the model's own activations g_p (the input of the last layer h), the min distances and
the cell of each image's closest patch (for Theorem 1's diagnostic).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from common.names import PAIR_SOURCES
from core.device import resolve_device
from core.model.similarity import log_similarity


@dataclass
class ActivationCache:
    """Per image (rows) and prototype (columns) of one data split, from one pass.

    max_log_sim: g(Z_x, p) = max over patches of log((d+1)/(d+eps)), float32 (N, M)
    activations: the model's activation g_p (what h reads; equals max_log_sim for the
                 "protopnet" similarity), float32 (N, M)
    min_distances: min over patches of the squared L2 distance, float32 (N, M)
    cells: flat index of the closest patch (row * W + col), int32 (N, M)
    labels: true class per image, int64 (N,)
    """

    max_log_sim: torch.Tensor
    activations: torch.Tensor
    min_distances: torch.Tensor
    cells: torch.Tensor
    labels: torch.Tensor

    @property
    def num_images(self) -> int:
        return int(self.labels.numel())

    def columns(self, index: torch.Tensor) -> ActivationCache:
        """The cache restricted to the prototypes at `index` (same images)."""
        return ActivationCache(self.max_log_sim[:, index], self.activations[:, index],
                               self.min_distances[:, index], self.cells[:, index], self.labels)


def as_loader(data, batch_size: int = 64, num_workers: int = 0):
    """An in-order DataLoader over a torch Dataset; anything else (a DataLoader, a list of
    (images, labels, ...) batches) is already an iterable of batches and is used as is."""
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return data


@torch.inference_mode()
def collect_activations(model, data, *, device=None, batch_size: int = 64, num_workers: int = 0,
                        progress: bool = False) -> ActivationCache:
    """Stream `data` (a Dataset, or batches (images, labels, ...) such as a DataLoader) once.

    Memory is one batch's (B, M, H*W) distances plus the (N, M) results; the model is
    put in eval mode (hard assignment, frozen BatchNorm statistics).
    """
    net = getattr(model, "module", model)
    device = resolve_device(device)
    was_training = net.training
    net.to(device).eval()
    eps = float(net.epsilon)
    parts: dict[str, list[torch.Tensor]] = {"max_log_sim": [], "activations": [], "min_distances": [],
                                            "cells": [], "labels": []}
    loader = as_loader(data, batch_size, num_workers)
    for batch in tqdm(loader, desc="prototype activations", disable=not progress, leave=False):
        images, labels = batch[0], batch[1]
        dist, _, act = net.prototype_layer(net.features(images.to(device)))
        flat = dist.flatten(2).float()                                  # (B, M, H*W)
        min_d, cell = flat.min(dim=2)
        parts["max_log_sim"].append(log_similarity(min_d, eps).cpu())   # g is decreasing in d
        parts["activations"].append(act.float().cpu())
        parts["min_distances"].append(min_d.cpu())
        parts["cells"].append(cell.to(torch.int32).cpu())
        parts["labels"].append(torch.as_tensor(labels).long().cpu())
    net.train(was_training)
    if not parts["labels"]:
        raise ValueError("collect_activations: the data set is empty")
    return ActivationCache(**{k: torch.cat(v) for k, v in parts.items()})


DD_RELATIVE_ZERO = 1e-11   # below this fraction of |a_p|^2 + |a_q|^2 two columns count as identical


def dd_squared_differences(activations: torch.Tensor) -> torch.Tensor:
    """(N, M) activations -> (M, M) float64 matrix of sum_x (a_xp - a_xq)^2, diagonal 0.

    Rows are centred first (subtracting each image's mean over prototypes changes no
    difference a_xp - a_xq but shrinks the magnitudes the Gram trick subtracts); sums
    below DD_RELATIVE_ZERO of |a_p|^2 + |a_q|^2 are rounding residue and become exactly
    0, so duplicated prototypes are recognised (similarity +inf).
    """
    a = activations.to(torch.float64)
    a = a - a.mean(dim=1, keepdim=True)
    sq = (a * a).sum(dim=0)                                     # (M,)
    gram = a.t() @ a                                            # (M, M), one matmul
    scale = sq[:, None] + sq[None, :]
    out = (scale - 2.0 * gram).clamp_min_(0.0)
    # what is left of identical columns is rounding (~1e-16 relative per term): call it 0
    out = torch.where(out <= DD_RELATIVE_ZERO * scale, torch.zeros_like(out), out)
    out.fill_diagonal_(0.0)
    return out


def _inverse_with_inf(values: torch.Tensor) -> torch.Tensor:
    """1 / values with +inf where values == 0 (identical prototypes, and the diagonal)."""
    return torch.where(values > 0, 1.0 / values.clamp_min(torch.finfo(values.dtype).tiny),
                       torch.full_like(values, float("inf")))


def data_dependent_similarity(activations: torch.Tensor) -> torch.Tensor:
    """d_DD for every pair: (M, M) float64, symmetric, +inf on the diagonal."""
    return _inverse_with_inf(dd_squared_differences(activations))


def euclidean_similarity(prototypes: torch.Tensor) -> torch.Tensor:
    """1 / ||p - q|| for every pair: (M, M) float64, symmetric, +inf on the diagonal."""
    p = prototypes.detach().to(torch.float64).cpu()
    dist = torch.cdist(p, p, compute_mode="donot_use_mm_for_euclid_dist")   # exact 0 for duplicates
    dist.fill_diagonal_(0.0)
    return _inverse_with_inf(dist)


SIMILARITIES = PAIR_SOURCES


def ranked_pairs(similarity: torch.Tensor, n: int | None = None, eligible: torch.Tensor | None = None,
                 finite_only: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs (a, b), a < b, most similar first: three 1-D tensors a, b, score.

    `eligible` (bool (M,)) restricts both ends; `finite_only` drops pairs of identical
    prototypes (score +inf); `n` keeps the first n. Ties keep (a, b) order, so the
    ranking is deterministic.
    """
    similarity = similarity.detach().cpu()
    m = similarity.shape[0]
    a, b = torch.triu_indices(m, m, offset=1)
    score = similarity[a, b]
    keep = torch.ones_like(score, dtype=torch.bool)
    if eligible is not None:
        eligible = torch.as_tensor(eligible, dtype=torch.bool).cpu()
        keep &= eligible[a] & eligible[b]
    if finite_only:
        keep &= torch.isfinite(score)
    a, b, score = a[keep], b[keep], score[keep]
    order = torch.sort(score, descending=True, stable=True).indices
    if n is not None:
        order = order[: max(int(n), 0)]
    return a[order], b[order], score[order]
