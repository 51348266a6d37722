"""PIP-Net built natively: shapes, the softmax over prototypes, non-negative class connections,
the losses' values on hand-made inputs, the phases of the authors' schedule, the two views."""
from __future__ import annotations

import math

import pytest
import torch
from pathlib import Path

from core.errors import UserFacingError
from core.pipnet import losses as L
from core.pipnet.model import PIPNetConfig, build_pipnet
from core.pipnet.phases import PIPNetSchedule, after_step, optimizers, phases, set_trainable, step

ROOT = Path(__file__).resolve().parent.parent

TINY = dict(backbone="resnet18", weights="none", truncate="layer2", num_prototypes=12, num_classes=4,
            backbone_padding="replicate", train_stem=True)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_pipnet(TINY)


def test_shapes_and_softmax_over_prototypes(tiny):
    tiny.eval()
    with torch.no_grad():
        out = tiny(torch.randn(3, 3, 64, 64))
    assert out.logits.shape == (3, 4) and out.maps.shape == (3, 12, 8, 8) and out.presence.shape == (3, 12)
    torch.testing.assert_close(out.maps.sum(dim=1), torch.ones(3, 8, 8))
    torch.testing.assert_close(out.presence, out.maps.amax(dim=(2, 3)))
    assert out.class_connections.shape == (4, 12)


def test_class_connections_are_non_negative_and_give_the_logits(tiny):
    tiny.eval()
    with torch.no_grad():
        tiny.classifier.weight[0, :6] = -1.0          # used through relu: no negative evidence
        out = tiny(torch.randn(2, 3, 64, 64))
    assert (out.class_connections >= 0).all() and (out.class_connections[0, :6] == 0).all()
    torch.testing.assert_close(out.logits, out.presence @ out.class_connections.t())
    tiny.classifier.reset_parameters()


def test_inference_ignores_presences_below_a_tenth(tiny):
    tiny.eval()
    with torch.no_grad():
        out = tiny(torch.randn(2, 3, 64, 64), inference=True)
        plain = tiny(torch.randn(2, 3, 64, 64))
    assert ((out.presence == 0) | (out.presence >= 0.1)).all()
    assert plain.presence.min() > 0


def test_paper_backbones_have_the_authors_grids():
    """Strides as the authors change them. At 224 px: ConvNeXt 56 -> 28 -> 27 -> 26 (the "26"
    variant) or 56 -> 28 -> 14 -> 13; ResNet 28 (the parity test runs ConvNeXt at 224).
    Here at 64 px to stay fast: 16 -> 8 -> 7 -> 6, 16 -> 8 -> 4 -> 3, ResNet 64 / 8."""
    for name, grid, protos in (("convnext_tiny_26", 6, 768), ("convnext_tiny_13", 3, 768),
                               ("resnet18", 8, 512)):
        model = build_pipnet(dict(backbone=name, weights="none", num_classes=3)).eval()
        with torch.no_grad():
            maps = model.patch_similarities(torch.randn(1, 3, 64, 64))
        assert maps.shape == (1, protos, grid, grid), name


def test_bad_config_is_one_line():
    with pytest.raises(UserFacingError, match="model.colour: unknown field"):
        PIPNetConfig.from_dict({"colour": 1})
    with pytest.raises(UserFacingError, match="model.backbone: 'vgg16' is not a PIP-Net backbone"):
        build_pipnet(dict(backbone="vgg16", num_classes=3))


def test_alignment_loss_values():
    one_hot = torch.zeros(2, 5, 3, 3)
    one_hot[:, 2] = 1.0
    assert float(L.alignment_loss(one_hot, one_hot)) == pytest.approx(0.0, abs=1e-9)
    uniform = torch.full((2, 5, 3, 3), 0.2)
    assert float(L.alignment_loss(uniform, uniform)) == pytest.approx(math.log(5), rel=1e-6)
    other = torch.zeros(2, 5, 3, 3)
    other[:, 0] = 1.0    # different prototypes for the same patch: -log(eps)
    assert float(L.alignment_loss(one_hot, other)) == pytest.approx(-math.log(L.ALIGN_EPS), rel=1e-6)


def test_alignment_gradient_reaches_both_views_through_stop_gradients():
    a = torch.softmax(torch.randn(2, 4, 2, 2), dim=1).requires_grad_()
    b = torch.softmax(torch.randn(2, 4, 2, 2), dim=1).requires_grad_()
    L.alignment_loss(a, b).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_tanh_uniformity_values():
    ones = torch.ones(2, 3)
    assert float(L.tanh_uniformity_loss(ones)) == pytest.approx(-math.log(math.tanh(2.0) + 1e-8), rel=1e-6)
    zeros = torch.zeros(2, 3)
    assert float(L.tanh_uniformity_loss(zeros)) == pytest.approx(-math.log(1e-8), rel=1e-5)
    half = torch.tensor([[1.0, 0.0], [1.0, 0.0]])   # one prototype never present: mean of the two terms
    expected = (-math.log(math.tanh(2.0) + 1e-8) - math.log(1e-8)) / 2
    assert float(L.tanh_uniformity_loss(half)) == pytest.approx(expected, rel=1e-6)


def test_classification_loss_on_log1p_squared_logits():
    logits = torch.tensor([[1.0, 0.0]])
    assert float(L.classification_loss(logits, torch.tensor([0]))) == pytest.approx(math.log(1.5), rel=1e-6)
    assert float(L.classification_loss(logits, torch.tensor([1]))) == pytest.approx(math.log(3.0), rel=1e-6)
    # multiplier 1: log(1 + o)
    assert float(L.classification_loss(logits, torch.tensor([0]), 1.0)) == pytest.approx(math.log(1.5), rel=1e-6)
    big = torch.tensor([[3.0, 1.0]])
    want = math.log(1 + math.exp(math.log(2.0) - math.log(10.0)))   # -log_softmax of [log 10, log 2] at 0
    assert float(L.classification_loss(big, torch.tensor([0]))) == pytest.approx(want, rel=1e-6)


def test_pipnet_loss_weights_per_phase():
    torch.manual_seed(1)
    maps = torch.softmax(torch.randn(4, 3, 2, 2), dim=1)
    presence = maps.amax(dim=(2, 3))
    logits = torch.rand(4, 2) * 3
    y = torch.tensor([0, 1])
    w = L.pretrain_weights(2, 10)
    assert (w.align, w.tanh, w.classification) == (0.2, 5.0, 0.0)
    pre = L.pipnet_loss(maps, presence, logits, y, w)
    assert "classification" not in pre
    assert float(pre["loss"]) == pytest.approx(0.2 * float(pre["align"]) + 5 * float(pre["tanh"]), rel=1e-6)
    sec = L.pipnet_loss(maps, presence, logits, y, L.SECOND_STAGE)
    want = 5 * float(sec["align"]) + 2 * float(sec["tanh"]) + 2 * float(sec["classification"])
    assert float(sec["loss"]) == pytest.approx(want, rel=1e-6)
    fin = L.pipnet_loss(maps, presence, logits, y, L.FINETUNE)
    assert float(fin["loss"]) == pytest.approx(2 * float(fin["classification"]), rel=1e-6)
    # both views are classified against the same labels
    assert float(sec["classification"]) == pytest.approx(
        float(L.classification_loss(logits, torch.tensor([0, 1, 0, 1]))), rel=1e-6)


def test_phases_follow_the_authors_schedule():
    got = [(p.name, p.first_epoch, p.last_epoch, p.trains) for p in phases(PIPNetSchedule())]
    assert got == [("pretrain", 1, 10, ("head", "late", "add_on")),
                   ("finetune", 1, 3, ("classifier",)),
                   ("frozen", 4, 10, ("head", "late", "add_on", "classifier")),
                   ("joint", 11, 60, ("head", "late", "add_on", "early", "classifier"))]
    # without a first stage, no finetune epochs (their main.py)
    names = [(p.name, p.first_epoch) for p in phases(PIPNetSchedule(epochs_pretrain=0))]
    assert names == [("frozen", 1), ("joint", 11)]


def test_classifier_lr_is_their_warm_restart_schedule(tiny):
    s = PIPNetSchedule(epochs=20)
    _, clf, _, lr_at = optimizers(tiny, s, "classify", steps_per_epoch=4)
    ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(clf, T_0=5, eta_min=0.001)
    for t in (0.0, 1.25, 4.75, 5.0, 7.5):
        ref.step(t)
        assert lr_at(t) == pytest.approx(ref.get_last_lr()[0], rel=1e-9)


def test_step_trains_only_the_phase_groups_and_clamps(tiny):
    torch.manual_seed(2)
    s = PIPNetSchedule(epochs_pretrain=1, epochs=2)
    finetune = phases(s)[1]
    set_trainable(tiny, finetune)
    batch = (torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64), torch.tensor([0, 3]))
    losses = step(tiny, batch, finetune, 1, s.epochs)
    losses["loss"].backward()
    assert tiny.classifier.weight.grad is not None
    assert all(p.grad is None for p in tiny.backbone.parameters())
    assert 0.0 <= float(losses["accuracy"]) <= 1.0
    with torch.no_grad():
        tiny.classifier.weight[0, 0] = 5e-4
        before = tiny.classifier.weight.clone()
    after_step(tiny, finetune, s)
    assert float(tiny.classifier.weight[0, 0].detach()) == 0.0
    torch.testing.assert_close(tiny.classifier.weight, torch.clamp(before - 1e-3, min=0))
    pre = phases(s)[0]
    set_trainable(tiny, pre)
    tiny.zero_grad(set_to_none=True)
    step(tiny, batch, pre, 1, 1)["loss"].backward()
    assert tiny.classifier.weight.grad is None and tiny.add_on.weight.grad is not None
    tiny.classifier.reset_parameters()


def test_two_views_share_geometry_and_differ_in_colour_only():
    from PIL import Image

    from core.pipnet.augment import two_view_transforms

    torch.manual_seed(0)
    shared, per_view = two_view_transforms(32, "cub", max_translate=4)
    img = Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy())
    base = shared(img)
    assert base.size == (36, 36)
    v1, v2 = per_view(base), per_view(base)
    assert v1.shape == v2.shape == (3, 32, 32)
    pre_shared, _ = two_view_transforms(32, "cub", pretrain=True)
    assert pre_shared.transforms[0].size == (64, 64)
    cars_shared, cars_view = two_view_transforms(32, "cars")
    assert cars_shared.transforms[0].size == (64, 64) and cars_view.transforms[0].strong
    with pytest.raises(ValueError):
        two_view_transforms(32, "pets")


def test_trainer_phases_draw_the_authors_two_views(tmp_path):
    """PIP-Net's phases bring their own two-view data (the contract's view_data): both views
    of an image come from one shape transform (same bird, same place) and differ in colour."""
    from core.architectures import architecture
    from core.data import load_dataset, make_synthetic
    from core.training.config import load_config

    root = make_synthetic(tmp_path / "birds", classes=2, images_per_class=3, size=64, seed=0)
    config = load_config(ROOT / "configs" / "pipnet-tiny-synthetic.yaml", [f"data.root={root}"])
    from core.model.contract import OncePhase

    phases = architecture("pipnet").phases(config)
    assert [p.name for p in phases] == ["pretrain_prototypes", "finetune", "frozen", "joint", "absent"]
    assert isinstance(phases[-1], OncePhase) and phases[-1].logs_row   # the authors' zeroing, last
    phases = phases[:-1]
    assert all(p.views == 2 and p.view_data is not None and not p.mixup for p in phases)
    assert phases[0].validate is False and phases[1].settings.lr == {"classifier": 0.05}
    plain = load_dataset("cub", root, split="train", image_size=64, val_fraction=0.0, augment=False)
    torch.manual_seed(0)
    views, label, index = phases[1].view_data(plain, config)[0]
    assert views.shape == (2, 3, 64, 64) and label == plain.records[0].label and index == 0
    assert not torch.equal(views[0], views[1])


def test_prototypes_never_present_above_a_tenth_lose_their_class_weights():
    """The authors' last step (main.py): a relevant prototype (max class weight > 1e-3) whose
    presence over the training images never exceeds 0.1 gets all its class weights zeroed;
    irrelevant prototypes and present ones are left alone."""
    from core.pipnet.absent import max_presence, zero_absent_prototypes

    torch.manual_seed(0)
    net = build_pipnet(TINY).eval()
    with torch.no_grad():
        net.classifier.weight.fill_(0.5)
        net.classifier.weight[:, 3] = 0.0005          # not relevant: never looked at
        net.classifier.weight[1, 5] = 0.0             # relevant through class 0 only
    images = torch.rand(5, 3, 64, 64)
    data = [(images[i], 0, i) for i in range(5)]
    presence = max_presence(net, data, batch_size=2, device="cpu")
    with torch.no_grad():
        expected = net(images).similarities.amax(dim=0)
    torch.testing.assert_close(presence, expected)
    presence = torch.full((12,), 0.5)
    presence[[3, 5, 7]] = 0.1                         # 0.1 is not above 0.1
    presence[9] = 0.1001
    before = net.classifier.weight.detach().clone()
    assert zero_absent_prototypes(net, presence) == [5, 7]
    after = net.classifier.weight.detach()
    assert bool((after[:, [5, 7]] == 0).all())
    keep = [i for i in range(12) if i not in (5, 7)]
    assert torch.equal(after[:, keep], before[:, keep])
    assert not bool(net.prototypes_in_use()[[5, 7]].any()) and bool(net.prototypes_in_use()[9])
