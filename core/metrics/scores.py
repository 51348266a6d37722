"""The published scores, from per-image part hits (numpy only; docs/METRICS.md).

Nothing here sees a model: the passes over the images (core.metrics.compute) reduce
activation maps to part-hit vectors, and these functions turn them into the scores of
Huang et al. (ICCV 2023) and PIP-Net (Nauta et al., CVPR 2023) exactly as their
authors' code does.
"""
from __future__ import annotations

import numpy as np


def consistency(hits: np.ndarray, visible: np.ndarray, threshold: float = 0.8) -> tuple[bool, np.ndarray]:
    """Huang et al.'s consistency of one prototype.

    hits (n_images, n_parts) 0/1: the part lies in the prototype's activation region on
    that image; visible (n_images, n_parts) 0/1: the part is annotated as visible. Per part,
    the frequency is hits / visible-count (a part never visible gets 0 / 1 = 0); the
    prototype is consistent when some part's frequency reaches `threshold`.
    Returns (consistent, per-part frequencies).
    """
    hits = np.asarray(hits, dtype=np.float64)
    visible = np.asarray(visible, dtype=np.float64)
    denom = visible.sum(axis=0)
    denom = np.where(denom == 0, 1.0, denom)
    freq = hits.sum(axis=0) / denom
    return bool((freq >= threshold).any()), freq


def stability(codes_clean: np.ndarray, codes_noisy: np.ndarray) -> float:
    """Huang et al.'s stability of one prototype: the share of its images whose part-hit
    vector is exactly the same with and without noise (codes: one bit mask per image)."""
    codes_clean, codes_noisy = np.asarray(codes_clean), np.asarray(codes_noisy)
    if codes_clean.size == 0:
        return float("nan")
    return float(np.mean(codes_clean == codes_noisy))


def merge_left_right(presence: np.ndarray, visible: np.ndarray, part_names: list[str]
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """PIP-Net's merge of CUB's left/right parts into the right one.

    presence, visible: (n_patches, n_parts) 0/1. For a pair (left X, right X): when both
    are visible the merged presence is the larger one; when only the left is visible its
    presence counts for the right one; the left column disappears. Returns the merged
    arrays and names (the right part's name is kept, as in PIP-Net's output).
    """
    presence = np.asarray(presence, dtype=np.float64).copy()
    visible = np.asarray(visible, dtype=bool).copy()
    index = {name: i for i, name in enumerate(part_names)}
    drop = []
    for i, name in enumerate(part_names):
        if "left" not in name:
            continue
        j = index.get(name.replace("left", "right"))
        if j is None:
            continue
        both = visible[:, i] & visible[:, j]
        only_left = visible[:, i] & ~visible[:, j]
        presence[both, j] = np.maximum(presence[both, i], presence[both, j])
        presence[only_left, j] = presence[only_left, i]
        visible[only_left, j] = True
        drop.append(i)
    keep = [i for i in range(len(part_names)) if i not in drop]
    return presence[:, keep], visible[:, keep], [part_names[i] for i in keep]


def purity(presence: np.ndarray, visible: np.ndarray, part_names: list[str]) -> dict:
    """PIP-Net's purity of one prototype from its top-k patches.

    presence/visible: (k, n_parts) after `merge_left_right`. A part's purity is the mean
    presence over the patches whose image shows that part; the prototype's purity is the
    largest over its parts (ties: the part present in more patches, then the first;
    parts visible in none of the images are not candidates). Also returns the part most
    often present and its purity (PIP-Net's second figure).
    """
    presence = np.asarray(presence, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    best, best_part, best_sum = 0.0, None, 0.0
    often_part, often_sum, often_purity = None, 0.0, 0.0
    for j, name in enumerate(part_names):
        shown = visible[:, j]
        if not shown.any():
            continue
        values = presence[shown, j]
        value, total = float(values.mean()), float(values.sum())
        if value > best or (value == best and (value == 0.0 or total > best_sum)):
            best, best_part, best_sum = value, name, total
        if total > often_sum:
            often_part, often_sum, often_purity = name, total, value
    return {"purity": best, "part": best_part, "most_present_part": often_part,
            "most_present_purity": often_purity}
