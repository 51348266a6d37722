"""Seeded stratified hold-outs (validation from train, folder test split)."""
from __future__ import annotations

import numpy as np
import pytest

from core.data.splits import select_split, stratified_holdout
from core.errors import DataError


def test_holdout_is_stratified_and_keeps_both_sides():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(30), rng.integers(1, 12, 30))
    for fraction in (0.05, 0.1, 0.5, 0.9):
        held = stratified_holdout(labels, fraction, seed=4)
        for c in range(30):
            n, k = (labels == c).sum(), held[labels == c].sum()
            if n == 1:
                assert k == 0
            else:
                assert 1 <= k <= n - 1
                assert k == min(max(int(round(fraction * n)), 1), n - 1)
    assert not stratified_holdout(labels, 0.0, seed=1).any()


def test_holdout_is_seeded():
    labels = np.repeat(np.arange(5), 20)
    a, b = stratified_holdout(labels, 0.2, 7), stratified_holdout(labels, 0.2, 7)
    assert (a == b).all()
    assert any((stratified_holdout(labels, 0.2, s) != a).any() for s in range(8, 12))


def test_select_split():
    labels = np.repeat(np.arange(3), 6)
    is_train = np.tile([True, True, True, True, False, False], 3)
    tr, va, tv, te = (select_split(s, is_train, labels, 0.25, 0) for s in ("train", "val", "trainval", "test"))
    assert sorted(np.concatenate([tr, va]).tolist()) == tv.tolist() == np.flatnonzero(is_train).tolist()
    assert te.tolist() == np.flatnonzero(~is_train).tolist()
    assert sorted(labels[va].tolist()) == [0, 1, 2]
    with pytest.raises(DataError, match="unknown split 'dev'"):
        select_split("dev", is_train, labels, 0.1, 0)
