"""Distances and prototype activations against direct (broadcasting) formulas."""
import math

import pytest
import torch

from core.errors import UserFacingError
from core.model.similarity import (focal_activation, focal_code_activation, get_activation, log_similarity,
                                   protopnet_activation, squared_distances)


def _direct_distances(z, p):
    # (B, D, H, W), (M, D) -> (B, M, H, W) by explicit differences
    diff = z[:, None, :, :, :] - p[None, :, :, None, None]
    return (diff ** 2).sum(dim=2)


@pytest.fixture()
def data():
    g = torch.Generator().manual_seed(0)
    z = torch.rand(3, 8, 4, 5, generator=g, dtype=torch.float64)
    p = torch.rand(6, 8, generator=g, dtype=torch.float64)
    p[0] = z[1, :, 2, 3]  # one prototype sits exactly on a patch
    return z, p


def test_squared_distances_match_direct_formula(data):
    z, p = data
    d = squared_distances(z, p)
    assert d.shape == (3, 6, 4, 5)
    torch.testing.assert_close(d, _direct_distances(z, p), rtol=1e-9, atol=1e-12)
    assert (d >= 0).all()
    assert d[1, 0, 2, 3] == pytest.approx(0.0, abs=1e-12)


def test_log_similarity_formula():
    d = torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64)
    expected = [math.log(1 / 1e-4), math.log(1.5 / (0.5 + 1e-4)), math.log(4 / (3 + 1e-4))]
    torch.testing.assert_close(log_similarity(d, 1e-4), torch.tensor(expected, dtype=torch.float64))


def test_activations_match_direct_formulas(data):
    z, p = data
    d = _direct_distances(z, p)
    eps = 1e-4
    g = torch.log((d + 1) / (d + eps)).flatten(2)
    torch.testing.assert_close(focal_activation(d, eps), g.max(dim=2).values - g.mean(dim=2))
    torch.testing.assert_close(protopnet_activation(d, eps), g.max(dim=2).values)
    flat = d.flatten(2)
    gmin = torch.log((flat.min(dim=2).values + 1) / (flat.min(dim=2).values + eps))
    gmean = torch.log((flat.mean(dim=2) + 1) / (flat.mean(dim=2) + eps))
    torch.testing.assert_close(focal_code_activation(d, eps), gmin - gmean)
    # the paper's focal similarity and the code's variant are genuinely different (Jensen)
    assert not torch.allclose(focal_activation(d, eps), focal_code_activation(d, eps))
    # focal similarity is non-negative: max >= mean
    assert (focal_activation(d, eps) >= 0).all()


def test_unknown_similarity_is_one_clear_error():
    with pytest.raises(UserFacingError, match="model.similarity"):
        get_activation("cosine")
