"""Backbone registry, model interface (INTERFACES.md "Models"), freezing, editing."""
import pytest
import torch
import torchvision

from core.errors import CheckpointError, UserFacingError
from core.architectures import build_model
from core.model import ModelOutput
from core.model.backbones import BACKBONES, build_add_on, build_backbone


def _cfg(**kw):
    cfg = dict(architecture="protopool", backbone="resnet18", weights="none", truncate="layer2", num_classes=3,
               num_prototypes=6, num_slots=2, prototypes_per_class=2, prototype_depth=8)
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_registered_backbone_builds_without_download(name):
    torch.manual_seed(0)
    net = build_backbone(name, "none").eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 64))
    assert out.shape[1] == net.out_channels
    assert out.shape[2] == 64 // net.stride
    assert set(BACKBONES) >= {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                              "densenet121", "densenet161"}


def test_truncated_resnet_has_finer_grid():
    full = build_backbone("resnet18", "none")
    l3 = build_backbone("resnet18", "none", "layer3")
    l2 = build_backbone("resnet18", "none", "layer2")
    assert (full.stride, l3.stride, l2.stride) == (32, 16, 8)
    assert (full.out_channels, l3.out_channels, l2.out_channels) == (512, 256, 128)
    assert not hasattr(l2, "layer3")
    with pytest.raises(UserFacingError, match="model.truncate"):
        build_backbone("resnet18", "none", "layer5")


def test_add_on_ends_with_sigmoid():
    add_on = build_add_on(32, 8, 2)
    out = add_on(torch.randn(2, 32, 3, 3))
    assert isinstance(add_on[-1], torch.nn.Sigmoid) and ((out > 0) & (out < 1)).all()


def test_bottleneck_add_on_halves_to_the_depth_as_protopnet():
    """ProtoPNet's construct_PPNet default: pairs of 1x1 convolutions halving the width down to D."""
    widths = lambda add_on: [(m.in_channels, m.out_channels) for m in add_on if isinstance(m, torch.nn.Conv2d)]  # noqa: E731
    assert widths(build_add_on(512, 128, kind="bottleneck")) == [(512, 256), (256, 256), (256, 128), (128, 128)]
    assert widths(build_add_on(2048, 512, kind="bottleneck")) == [(2048, 1024), (1024, 1024), (1024, 512), (512, 512)]
    assert widths(build_add_on(512, 512, kind="bottleneck")) == [(512, 512), (512, 512)]
    assert widths(build_add_on(256, 512, kind="bottleneck")) == [(256, 512), (512, 512)]
    add_on = build_add_on(512, 128, kind="bottleneck")
    assert [type(m).__name__ for m in add_on][-2:] == ["Conv2d", "Sigmoid"]
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in add_on) == 1
    with pytest.raises(UserFacingError, match="model.add_on_type"):
        build_add_on(512, 128, kind="wide")


def test_vgg_backbone_is_torchvision_features_without_classifier():
    torch.manual_seed(0)
    net = build_backbone("vgg11_bn", "none")
    ref = torchvision.models.vgg11_bn(weights=None).features
    assert [k for k in net.state_dict()] == ["features." + k for k in ref.state_dict()]
    assert not any(isinstance(m, torch.nn.Linear) for m in net.modules())
    assert (net.out_channels, net.stride) == (512, 32)
    with pytest.raises(UserFacingError, match="model.truncate"):
        build_backbone("vgg11", "none", "layer3")


def test_inaturalist_weights_are_remapped(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet50(weights=None)
    state = {}
    for key, value in ref.state_dict().items():
        key = key.replace("layer4.2.", "cb_block.") if key.startswith("layer4.2.") else key
        state["module." + key] = value
    state["module.rb_block.conv1.weight"] = torch.zeros(3)
    state["module.classifier.weight"] = torch.zeros(5089, 2048)
    path = tmp_path / "inat.pth"
    torch.save({"state_dict": state}, path)
    net = build_backbone("resnet50", str(path))
    assert torch.equal(net.layer4[2].conv3.weight, ref.layer4[2].conv3.weight)
    assert torch.equal(net.conv1.weight, ref.conv1.weight)
    with pytest.raises(CheckpointError, match="does not exist"):
        build_backbone("resnet50", str(tmp_path / "missing.pth"))
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="lacks"):
        build_backbone("resnet50", str(tmp_path / "bad.pth"))


@pytest.mark.parametrize("arch", ["protopool", "protopnet"])
def test_model_interface_shapes(arch):
    torch.manual_seed(0)
    model = build_model(_cfg(architecture=arch, num_prototypes=None if arch == "protopnet" else 6)).eval()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert isinstance(out, ModelOutput)
    m = model.num_prototypes
    assert out.logits.shape == (2, 3) and out.min_distances.shape == (2, m) and out.similarities.shape == (2, m)
    d = model.patch_distances(x)
    assert d.shape == (2, m, 4, 4) and model.features(x).shape == (2, 8, 4, 4)
    torch.testing.assert_close(model.patch_similarities(x), torch.log((d + 1) / (d + 1e-4)))
    torch.testing.assert_close(out.min_distances, d.flatten(2).amin(2))
    hard = model.hard_assignment()
    assert hard.shape[0] == 3 and hard.shape[2] == m
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    classes = model.prototype_classes()
    assert len(classes) == m
    for p, cls in enumerate(classes):
        for c in cls:
            assert hard[c, :, p].max() == 1
    if arch == "protopnet":
        assert classes == [[0], [0], [1], [1], [2], [2]]
        assert model.last_layer.weight.shape == (3, 6)
    else:
        assert model.last_layer.weight.shape == (3, 6)  # C x C*K with K=2
        # eval forward is deterministic (hard assignment, no noise)
        torch.testing.assert_close(model(x).logits, out.logits)


def test_frozen_batchnorm_stays_in_eval_mode():
    model = build_model(_cfg())
    model.set_trainable(["add_on", "prototypes", "slots"])
    model.train()
    assert not model.backbone.bn1.training and not model.backbone.layer1[0].bn1.training
    assert model.add_on.training and model.slots.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not model.last_layer.weight.requires_grad
    model.set_trainable(["backbone", "add_on", "prototypes", "slots"])
    model.train()
    assert model.backbone.bn1.training
    model.set_trainable(["last_layer"])  # slots frozen -> hard assignment even in train mode
    model.train()
    assert not model.slots.training and torch.equal(model.slots(), model.hard_assignment())


def test_protopnet_editing_for_merge_pruning():
    torch.manual_seed(0)
    model = build_model(_cfg(architecture="protopnet", num_prototypes=None)).eval()
    # merge prototype 1 into 2 (as ProtoPShare does), then drop 1
    with torch.no_grad():
        model.prototype_class_identity[2] = torch.clamp(model.prototype_class_identity[2]
                                                        + model.prototype_class_identity[1], max=1)
        model.last_layer.weight[:, 2] += model.last_layer.weight[:, 1]
    keep = torch.tensor([0, 2, 3, 4, 5])
    model.keep_prototypes(keep)
    assert model.num_prototypes == 5 and model.config.num_prototypes == 5
    assert model.last_layer.weight.shape == (3, 5)
    assert model.prototype_classes()[1] == [0, 1]
    hard = model.hard_assignment()
    assert hard.shape == (3, 2, 5) and hard[0, :, 1].sum() == 1 and hard[1, :, 1].sum() == 1
    assert [hard[c].sum().item() for c in range(3)] == [2, 2, 2]
    assert model(torch.randn(1, 3, 32, 32)).logits.shape == (1, 3)


def test_build_errors_name_the_field():
    with pytest.raises(UserFacingError, match="model.backbone"):
        build_model(_cfg(backbone="alexnet"))
    with pytest.raises(UserFacingError, match="model.architecture"):
        build_model(_cfg(architecture="prototree"))
    with pytest.raises(UserFacingError, match="model.num_classes"):
        build_model(_cfg(num_classes=None))
    with pytest.raises(UserFacingError, match="model.colour"):
        build_model(_cfg(colour=1))


def test_backbone_padding_option():
    from core.model.backbones import build_backbone

    net = build_backbone("resnet18", "none", "layer2", padding="replicate")
    padded = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and max(m.padding) > 0]
    assert padded and all(m.padding_mode == "replicate" for m in padded)
    # a constant image gives constant features everywhere: no border cell is special
    with torch.no_grad():
        net.eval()
        out = net(torch.ones(1, 3, 64, 64))
    assert torch.allclose(out, out[..., :1, :1].expand_as(out), atol=1e-5)
    with pytest.raises(UserFacingError, match="backbone_padding"):
        build_backbone("resnet18", "none", "layer2", padding="circular-ish")


class _Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_refused_backbone_weight_file_is_one_short_line(tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": _Exploit()}, path)
    with pytest.raises(CheckpointError) as info:
        build_backbone("resnet18", str(path))
    message = str(info.value)
    assert "\n" not in message and "print" in message and "nothing was run" in message
    assert "weights_only" not in message and len(message) < 300
