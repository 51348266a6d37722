"""Losses against loop-based reference implementations (the real ones are vectorised)."""
import pytest
import torch
import torch.nn.functional as F

from core.architectures import build_model
from core.model.losses import (
    LossWeights,
    cluster_cost,
    compute_losses,
    cross_entropy,
    l1_off_class,
    orthogonality_loss,
    separation_cost,
)


def _one_hot_slots(indices, m):
    # indices: list (per class) of lists (per slot) of prototype ids
    return torch.stack([F.one_hot(torch.tensor(row), m).float() for row in indices])


def test_orthogonality_zero_exactly_when_slots_hold_distinct_prototypes():
    distinct = _one_hot_slots([[0, 1, 2], [3, 4, 0]], 6)
    assert orthogonality_loss(distinct).item() == 0.0
    shared = _one_hot_slots([[0, 0, 2], [3, 4, 0]], 6)   # class 0 uses prototype 0 in two slots
    assert orthogonality_loss(shared).item() == pytest.approx(1 / (2 * 3))
    all_same = _one_hot_slots([[1, 1, 1], [1, 1, 1]], 6)
    assert orthogonality_loss(all_same).item() == pytest.approx(2 * 3 / (2 * 3))
    soft = torch.softmax(torch.randn(2, 3, 6), dim=-1)    # full support: never exactly 0
    assert orthogonality_loss(soft).item() > 0


def test_orthogonality_matches_pairwise_cosines():
    torch.manual_seed(0)
    y = torch.softmax(torch.randn(4, 5, 7), dim=-1)
    ref = 0.0
    for c in range(4):
        for i in range(5):
            for j in range(i + 1, 5):
                ref += F.cosine_similarity(y[c, i], y[c, j], dim=0)
    assert orthogonality_loss(y).item() == pytest.approx(float(ref) / 20, rel=1e-5)


def test_cluster_and_separation_match_loops():
    torch.manual_seed(0)
    b, c, k, m = 5, 3, 2, 7
    d = torch.rand(b, m) * 4
    y = torch.softmax(torch.randn(c, k, m) * 3, dim=-1)
    labels = torch.tensor([0, 1, 2, 1, 0])
    targets = F.one_hot(labels, c).float()
    mask = torch.zeros(c, m, dtype=torch.bool)
    for cc in range(c):
        for kk in range(k):
            mask[cc, y[cc, kk].argmax()] = True
    clst_ref, sep_ref, clst_mask_ref = 0.0, 0.0, 0.0
    for i in range(b):
        cc = int(labels[i])
        clst_ref += min(float((y[cc, kk] * d[i]).sum()) for kk in range(k))
        sep_ref += min(float(d[i, j]) for j in range(m) if not mask[cc, j])
        clst_mask_ref += min(float(d[i, j]) for j in range(m) if mask[cc, j])
    assert cluster_cost(d, targets, mask, y).item() == pytest.approx(clst_ref / b, rel=1e-5)
    assert cluster_cost(d, targets, mask, None).item() == pytest.approx(clst_mask_ref / b, rel=1e-5)
    assert separation_cost(d, targets, mask).item() == pytest.approx(sep_ref / b, rel=1e-5)
    # mixup soft targets weight the two classes' costs
    soft = 0.5 * targets + 0.5 * targets.roll(1, dims=0)
    mixed = cluster_cost(d, soft, mask, y).item()
    per_class = torch.einsum("bm,ckm->bck", d, y).amin(2)
    assert mixed == pytest.approx(float((soft * per_class).sum(1).mean()), rel=1e-6)


def test_soft_target_cross_entropy_equals_hard_for_one_hot():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    labels = torch.randint(0, 4, (6,))
    torch.testing.assert_close(cross_entropy(logits, F.one_hot(labels, 4).float()), cross_entropy(logits, labels))


def _tiny(arch, **kw):
    cfg = dict(architecture=arch, backbone="resnet18", weights="none", truncate="layer2", num_classes=4,
               num_prototypes=9, num_slots=2, prototypes_per_class=2, prototype_depth=16)
    cfg.update(kw)
    return build_model(cfg)


def test_last_layer_initialisation_and_l1_mask():
    pool = _tiny("protopool")
    w = pool.last_layer.weight
    assert w.shape == (4, 8)
    expected = torch.zeros(4, 8)
    for c in range(4):
        expected[c, 2 * c:2 * c + 2] = 1
    assert torch.equal(w.detach(), expected)
    assert l1_off_class(w, pool.last_layer_l1_mask()).item() == 0.0
    net = _tiny("protopnet", num_prototypes=None)
    w = net.last_layer.weight.detach()
    assert w.shape == (4, 8)
    assert w[1, 2] == 1 and w[1, 3] == 1 and w[1, 0] == -0.5 and w[0, 7] == -0.5
    assert l1_off_class(net.last_layer.weight, net.last_layer_l1_mask()).item() == pytest.approx(0.5 * 4 * 6)


def test_compute_losses_weights_and_gradients():
    torch.manual_seed(0)
    model = _tiny("protopool")
    model.train()
    x = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 3, 1])
    out = model(x)
    total, terms = compute_losses(model, out, labels, LossWeights())
    expected = (terms["cross_entropy"] + 0.8 * terms["cluster"] - 0.08 * terms["separation"]
                + 1.0 * terms["orthogonality"] + 1e-4 * terms["l1"])
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    total.backward()
    assert model.slots.logits.grad is not None and model.slots.logits.grad.abs().sum() > 0
    assert model.prototypes.grad.abs().sum() > 0
    off = LossWeights(orthogonality=0.0)
    _, terms_off = compute_losses(model, model(x), labels, off)
    assert terms_off["orthogonality"].item() == 0.0


def test_orthogonality_on_the_sampled_assignment_and_the_code_form():
    from core.model.losses import orthogonality_loss_code

    torch.manual_seed(0)
    model = _tiny("protopool")
    model.train()
    x = torch.randn(2, 3, 32, 32)
    labels = torch.tensor([0, 1])
    out = model(x)
    # "assignment": the distributions of this pass (the Gumbel sample the slot scores used)
    _, terms = compute_losses(model, out, labels, LossWeights(orthogonality_on="assignment"))
    assert terms["orthogonality"].item() == pytest.approx(orthogonality_loss(out.assignment).item(), rel=1e-6)
    # the authors' form: cosine of the raw logits over prototypes, diagonal included, / (C*K) - 1
    q = model.slots.logits                                            # (C, K, M)
    c, k, _ = q.shape
    ref = sum(torch.nn.functional.cosine_similarity(q[ci, i], q[ci, j], dim=0)
              for ci in range(c) for i in range(k) for j in range(k)) / (c * k) - 1
    assert orthogonality_loss_code(q).item() == pytest.approx(float(ref), rel=1e-5, abs=1e-6)
    _, terms_code = compute_losses(model, out, labels, LossWeights(orthogonality_on="logits"))
    assert terms_code["orthogonality"].item() == pytest.approx(float(ref), rel=1e-5, abs=1e-6)


def test_orthogonality_on_the_noise_free_slot_distributions():
    """`probabilities` (the default): L_orth of softmax(q) at temperature 1, whatever the
    pass sampled; its gradient on q does not vanish at a small tau, where the Gumbel
    sample's does (the sample is one-hot there)."""
    torch.manual_seed(0)
    model = _tiny("protopool")
    model.train()
    x = torch.randn(2, 3, 32, 32)
    labels = torch.tensor([0, 1])
    assert LossWeights().orthogonality_on == "probabilities"
    grads = {}
    for form in ("probabilities", "assignment"):
        model.set_tau(1e-3)
        out = model(x)
        _, terms = compute_losses(model, out, labels, LossWeights(orthogonality_on=form))
        if form == "probabilities":
            ref = orthogonality_loss(torch.softmax(model.slots.logits, dim=-1))
            assert terms["orthogonality"].item() == pytest.approx(ref.item(), rel=1e-6)
        only = LossWeights(cross_entropy=0.0, cluster=0.0, separation=0.0, l1=0.0, orthogonality_on=form)
        total, _ = compute_losses(model, model(x), labels, only)
        model.slots.logits.grad = None
        total.backward()
        grads[form] = float(model.slots.logits.grad.norm())
    assert grads["probabilities"] > 1e-4 and grads["assignment"] < 1e-3 * grads["probabilities"]


def test_unknown_orthogonality_form_is_one_clear_error():
    from core.errors import UserFacingError

    with pytest.raises(UserFacingError, match="loss.orthogonality_on"):
        LossWeights.from_dict({"orthogonality_on": "cosine"})
