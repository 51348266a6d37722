"""Distances and prototype activations against direct (broadcasting) formulas."""
import math

import pytest
import torch

from core.errors import UserFacingError
from core.model.similarity import (
    focal_activation,
    focal_code_activation,
    get_activation,
    log_similarity,
    protopnet_activation,
    squared_distances,
    squared_distances_conv,
)


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


def test_conv_distances_match_direct_formula(data):
    """The official code's 1x1-convolution form (distance_kernel "conv") gives the same distances."""
    z, p = data
    d = squared_distances_conv(z, p)
    torch.testing.assert_close(d, _direct_distances(z, p), rtol=1e-9, atol=1e-12)
    assert (d >= 0).all() and d.shape == (3, 6, 4, 5)


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


def test_focal_code_mixes_distances_through_the_slots_before_the_log():
    from core.architectures import build_model

    torch.manual_seed(0)
    model = build_model(dict(architecture="protopool", backbone="resnet18", weights="none", truncate="layer2",
                             num_classes=3, num_prototypes=5, num_slots=2, prototype_depth=8,
                             similarity="focal-code"))
    model.train()
    model.set_tau(1.0)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    with torch.no_grad():
        dist = model.patch_distances(x).flatten(2)                       # (B, M, HW)
    y = out.assignment.detach()                                          # (C, K, M), soft here
    slot_min = torch.einsum("bm,ckm->bck", dist.amin(2), y)
    slot_mean = torch.einsum("bm,ckm->bck", dist.mean(2), y)
    slot = log_similarity(slot_min, 1e-4) - log_similarity(slot_mean, 1e-4)
    expected = slot.reshape(2, -1) @ model.last_layer.weight.detach().t()
    torch.testing.assert_close(out.logits.detach(), expected, rtol=1e-4, atol=1e-5)
    # mixing after the log (the per-prototype value) is a different number for soft slots
    after = torch.einsum("bm,ckm->bck", focal_code_activation(dist[..., None], 1e-4), y)
    assert not torch.allclose(slot, after, rtol=1e-3)
    # one-hot slots (evaluation): both forms agree
    model.eval()
    hard = model(x)
    per_proto = focal_code_activation(model.patch_distances(x), 1e-4)
    torch.testing.assert_close(hard.similarities, per_proto)
    h = model.hard_assignment()
    torch.testing.assert_close(hard.logits, torch.einsum("bm,ckm->bck", per_proto, h).reshape(2, -1)
                               @ model.last_layer.weight.t(), rtol=1e-4, atol=1e-5)
