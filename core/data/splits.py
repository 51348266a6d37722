"""Seeded, stratified splits (validation carved from train; folder train/test)."""
from __future__ import annotations

import numpy as np


def stratified_holdout(labels, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the held-out share of each class.

    Each class gives `round(fraction * n)` of its n items, but always keeps at least one
    item on the other side, and gives at least one when fraction > 0 and n >= 2, so small
    classes still appear in both parts. Deterministic for a given seed and label order.
    """
    labels = np.asarray(labels)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    mask = np.zeros(len(labels), dtype=bool)
    if fraction == 0.0 or len(labels) == 0:
        return mask
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = len(idx)
        k = int(round(fraction * n))
        if n >= 2:
            k = min(max(k, 1), n - 1)
        else:
            k = 0
        if k:
            mask[rng.permutation(idx)[:k]] = True
    return mask


def select_split(split: str, is_train: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Indices for "train" (official train minus val), "val", "trainval" or "test"."""
    from core.errors import DataError

    is_train = np.asarray(is_train, dtype=bool)
    train_idx = np.flatnonzero(is_train)
    if split == "test":
        return np.flatnonzero(~is_train)
    if split == "trainval":
        return train_idx
    if split in ("train", "val"):
        held = stratified_holdout(np.asarray(labels)[train_idx], val_fraction, seed)
        return train_idx[held] if split == "val" else train_idx[~held]
    raise DataError(f"unknown split {split!r}: use train, val, trainval or test")
