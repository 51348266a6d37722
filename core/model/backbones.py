"""Convolutional backbones `f` (torchvision models without pooling and classifier).

A registry maps a name to a torchvision constructor, so adding an architecture is one
line and no `if name == ...` chain grows in model code. Weights are an explicit choice:
"none", "imagenet" (torchvision's weights, downloaded only because the user asked) or a
local file (e.g. the iNaturalist-2017 ResNet-50 that CUB comparisons use).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from core.errors import CheckpointError, UserFacingError


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one torchvision architecture and which weights enum it uses."""

    constructor: Callable[..., nn.Module]
    weights_enum: object
    family: str  # "resnet" | "densenet" | "vgg"
    vgg_cfg: str = ""          # VGG: torchvision's layer list ("A" 11, "B" 13, "D" 16, "E" 19 layers)
    batch_norm: bool = False   # VGG: with BatchNorm after every convolution


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(torchvision.models.resnet18, torchvision.models.ResNet18_Weights, "resnet"),
    "resnet34": BackboneSpec(torchvision.models.resnet34, torchvision.models.ResNet34_Weights, "resnet"),
    "resnet50": BackboneSpec(torchvision.models.resnet50, torchvision.models.ResNet50_Weights, "resnet"),
    "resnet101": BackboneSpec(torchvision.models.resnet101, torchvision.models.ResNet101_Weights, "resnet"),
    "resnet152": BackboneSpec(torchvision.models.resnet152, torchvision.models.ResNet152_Weights, "resnet"),
    "densenet121": BackboneSpec(torchvision.models.densenet121, torchvision.models.DenseNet121_Weights, "densenet"),
    "densenet161": BackboneSpec(torchvision.models.densenet161, torchvision.models.DenseNet161_Weights, "densenet"),
}
_VGG_CFGS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}
for _name, _cfg in _VGG_CFGS.items():   # the VGG backbones of the ProtoPNet/ProtoPool/ProtoPShare code
    for _bn in (False, True):
        _key = _name + ("_bn" if _bn else "")
        BACKBONES[_key] = BackboneSpec(getattr(torchvision.models, _key),
                                       getattr(torchvision.models, f"VGG{_name[3:]}{'_BN' if _bn else ''}_Weights"),
                                       "vgg", _cfg, _bn)

RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")


def _block_out_channels(layer: nn.Sequential) -> int:
    last = layer[-1]
    conv = getattr(last, "conv3", None) or last.conv2
    return int(conv.out_channels)


class ResNetFeatures(nn.Module):
    """A torchvision ResNet up to `last_stage` (default layer4): no avgpool, no fc.

    Truncating after layer2/layer3 keeps the torchvision modules (and their state-dict
    keys) but gives a finer feature grid at small inputs, which the CPU demo needs.
    """

    def __init__(self, net: nn.Module, last_stage: str = "layer4"):
        super().__init__()
        if last_stage not in RESNET_STAGES:
            raise UserFacingError(
                f"model.truncate: {last_stage!r} is not one of {', '.join(RESNET_STAGES)}")
        keep = RESNET_STAGES[: RESNET_STAGES.index(last_stage) + 1]
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        for name in keep:
            setattr(self, name, getattr(net, name))
        self.stages = keep
        self.out_channels = _block_out_channels(getattr(net, keep[-1]))
        self.stride = 4 * 2 ** (len(keep) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stages:
            x = getattr(self, name)(x)
        return x


class DenseNetFeatures(nn.Module):
    """torchvision DenseNet `features` followed by the final ReLU (as its classifier does)."""

    def __init__(self, net: nn.Module, last_stage: str = "layer4"):
        super().__init__()
        if last_stage != "layer4":
            raise UserFacingError("model.truncate: only ResNet backbones can be truncated")
        self.features = net.features
        self.out_channels = int(net.classifier.in_features)
        self.stride = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.features(x))


class VGGFeatures(nn.Module):
    """torchvision VGG `features`: 3x3 convolutions (BatchNorm), ReLUs and all five max-pools, no classifier
    (as the official `VGG_features`, whose `features` Sequential has the same layers and indices)."""

    def __init__(self, net: nn.Module, last_stage: str = "layer4"):
        super().__init__()
        if last_stage != "layer4":
            raise UserFacingError("model.truncate: only ResNet backbones can be truncated")
        self.features = net.features
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        self.out_channels = int(convs[-1].out_channels)
        self.stride = 2 ** sum(isinstance(m, nn.MaxPool2d) for m in self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _vgg_without_classifier(spec: BackboneSpec) -> nn.Module:
    """VGG layers only, initialised as torchvision does (its 120M-weight classifier is never built)."""
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs[spec.vgg_cfg], spec.batch_norm)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    holder = nn.Module()
    holder.features = features
    return holder


_FAMILY = {"resnet": ResNetFeatures, "densenet": DenseNetFeatures, "vgg": VGGFeatures}


def remap_inaturalist_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the iNaturalist-2017 ResNet-50 keys to torchvision's.

    That checkpoint stores the last bottleneck of layer4 as `cb_block`, has an extra
    `rb_block` and its own classifier; we map `cb_block` to `layer4.2` and drop the rest.
    Also strips `module.`/`backbone.` prefixes that wrappers leave behind.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith("rb_block") or key.startswith("fc.") or key.startswith("classifier"):
            continue
        if key.startswith("cb_block."):
            key = "layer4.2." + key[len("cb_block."):]
        out[key] = value
    return out


def _load_local_weights(net: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"model.weights: backbone weight file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear line
        from core.pickle_messages import refused_global, short_reason
        name = refused_global(str(exc))
        why = f"the pickle asks for {name!r}, which a weight file never needs; nothing was run" if name else \
            short_reason(str(exc))
        raise CheckpointError(f"model.weights: cannot read {path}: {why}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"model.weights: {path} holds no state dict")
    state = remap_inaturalist_keys(state)
    own = net.state_dict()   # the kept stages only: a truncated backbone ignores later ones
    missing = [k for k in own if k not in state]
    if missing:
        raise CheckpointError(
            f"model.weights: {path} lacks {len(missing)} backbone keys, e.g. {missing[0]!r}")
    for key in own:
        if key in state and tuple(state[key].shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"model.weights: {path} key {key!r} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(own[key].shape)}")
    net.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


PADDINGS = ("zeros", "replicate", "reflect")


def set_padding(net: nn.Module, mode: str) -> None:
    """Padding of every padded convolution: "zeros" (torchvision) or "replicate"/"reflect".

    Why: a backbone trained from scratch on small crops (the CPU demo) learns to tell the
    zero-padded border cells apart, and prototypes then sit on image borders whatever
    the bird shows; with replicated borders no cell is special by its position.
    """
    if mode not in PADDINGS:
        raise UserFacingError(f"model.backbone_padding: {mode!r} is not one of {', '.join(PADDINGS)}")
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and any(int(p) > 0 for p in m.padding):
            m.padding_mode = mode


def build_backbone(name: str, weights: str | None = "none", truncate: str | None = None,
                   padding: str = "zeros") -> nn.Module:
    """Build backbone `name` with `weights` ("none" | "imagenet" | a file path).

    The returned module has `out_channels` and `stride` attributes.
    """
    spec = BACKBONES.get(name)
    if spec is None:
        raise UserFacingError(f"model.backbone: unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    weights = "none" if weights in (None, "", "none") else str(weights)
    if weights == "imagenet":
        net = spec.constructor(weights=spec.weights_enum.DEFAULT)  # downloads if not cached
    elif spec.family == "vgg":
        net = _vgg_without_classifier(spec)
    else:
        net = spec.constructor(weights=None)
    features = _FAMILY[spec.family](net, truncate or "layer4")
    set_padding(features, padding or "zeros")
    if weights not in ("none", "imagenet"):
        _load_local_weights(features, Path(weights).expanduser())
    return features


ADD_ON_TYPES = ("regular", "bottleneck")


def bottleneck_convs(in_channels: int, depth: int) -> list[tuple[int, int]]:
    """(in, out) channels of the 1x1 convolutions of ProtoPNet's `bottleneck` add-on: pairs
    that halve the width (never below D) until it reaches D; at least one pair."""
    convs: list[tuple[int, int]] = []
    current = in_channels
    while current > depth or not convs:
        out = max(depth, current // 2)
        convs += [(current, out), (out, out)]
        current //= 2
    return convs


def build_add_on(in_channels: int, depth: int, layers: int = 2, kind: str = "regular") -> nn.Sequential:
    """1x1 convolutions to depth D: ReLU between them, sigmoid last (SPEC section 1).

    kind "regular": `layers` convolutions, all of width D. "bottleneck" (ProtoPNet's
    `construct_PPNet` default): the pairs of `bottleneck_convs` (`layers` is not used).
    """
    if kind not in ADD_ON_TYPES:
        raise UserFacingError(f"model.add_on_type: {kind!r} is not one of {', '.join(ADD_ON_TYPES)}")
    if kind == "bottleneck":
        shapes = bottleneck_convs(in_channels, depth)
    elif layers < 1:
        raise UserFacingError(f"model.add_on_layers: must be >= 1, got {layers}")
    else:
        shapes = [(in_channels if i == 0 else depth, depth) for i in range(layers)]
    modules: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(shapes):
        modules.append(nn.Conv2d(c_in, c_out, kernel_size=1))
        modules.append(nn.Sigmoid() if i == len(shapes) - 1 else nn.ReLU())
    for m in modules:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return nn.Sequential(*modules)
