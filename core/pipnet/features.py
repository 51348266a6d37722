"""PIP-Net's backbones: torchvision networks cut before pooling, with the strides PIP-Net changes.

PIP-Net wants a fine grid of patches (a prototype is a small image part), so it reduces
the downsampling of its backbones (authors' code, `features/*.py`):

- ConvNeXt-tiny ("convnext_tiny_26", their default): the stride-2 downsampling
  convolutions with more than 100 input channels (stages 3 and 4) get stride 1: 224 px
  gives a 26x26 grid (kernel 2, no padding: 28 -> 27 -> 26). "convnext_tiny_13": only
  the one with more than 300 input channels (stage 4): 13x13. No final LayerNorm (their
  classifier, which holds it, is replaced by an identity).
- ResNet-18/34/50/101/152: layer3 and layer4 get stride 1 (224 px gives 28x28).
- A truncated ResNet (`truncate: layer2|layer3`, our tiny CPU configs): torchvision's
  layers up to that stage with their strides, built by core.model.backbones (no stride
  change: at 64 px, layer2 already gives an 8x8 grid).

Module names equal the authors' `_net` names, so their weights map key for key:
ConvNeXt `features.N...`, ResNet `conv1, bn1, layer1..4`.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from core.errors import CheckpointError, UserFacingError
from core.model.backbones import build_backbone

CONVNEXT_THRESHOLDS = {"convnext_tiny_26": 100, "convnext_tiny_13": 300}
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
NETS = (*CONVNEXT_THRESHOLDS, *RESNETS)


class ConvNeXtFeatures(nn.Module):
    """torchvision ConvNeXt `features` (stem + 4 stages), strides reduced above `threshold` channels."""

    def __init__(self, threshold: int, weights: str = "none"):
        super().__init__()
        if weights == "imagenet":
            net = torchvision.models.convnext_tiny(weights=torchvision.models.ConvNeXt_Tiny_Weights.DEFAULT)
        else:
            net = torchvision.models.convnext_tiny(weights=None)
        self.features = net.features
        halved = 0
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d) and m.stride[0] == 2 and m.in_channels > threshold:
                m.stride = tuple(s // 2 for s in m.stride)
                halved += 1
        self.out_channels = 768
        self.stride = 32 // 2 ** halved   # approximate: the stride-1 2x2 kernels also trim a cell each

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _resnet_unstrided(name: str, weights: str, padding: str) -> nn.Module:
    """Full ResNet (layer4) with stride 1 in layer3 and layer4, as the authors' ResNet_features."""
    net = build_backbone(name, "imagenet" if weights == "imagenet" else "none", None, padding)
    for stage in ("layer3", "layer4"):
        first = getattr(net, stage)[0]
        for m in first.modules():
            if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
                m.stride = (1, 1)
    net.stride = 8
    return net


def _load_file(net: nn.Module, path: Path) -> None:
    """Local backbone weights (a state dict, e.g. torchvision's file), strict on the kept keys."""
    from core.unpickle import restricted_load

    state = restricted_load(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"model.weights: {path} holds no state dict")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise CheckpointError(f"model.weights: {path} lacks {len(missing)} backbone keys, e.g. {missing[0]!r}")
    net.load_state_dict({k: v for k, v in state.items() if k in own})


def build_features(name: str, weights: str | None = "none", truncate: str | None = None,
                   padding: str = "zeros") -> nn.Module:
    """PIP-Net backbone `name` (see NETS) with `weights` "none" | "imagenet" | a file path.

    The module has `out_channels` (prototypes when there is no add-on convolution) and
    an approximate `stride`. `truncate` (ResNet only) keeps torchvision's strides.
    """
    weights = "none" if weights in (None, "", "none") else str(weights)
    if name in CONVNEXT_THRESHOLDS:
        if truncate:
            raise UserFacingError(f"model.truncate: only ResNet backbones can be truncated, not {name}")
        net: nn.Module = ConvNeXtFeatures(CONVNEXT_THRESHOLDS[name], weights)
        if padding != "zeros":
            raise UserFacingError("model.backbone_padding: ConvNeXt keeps zero padding")
    elif name in RESNETS:
        if truncate and truncate != "layer4":
            net = build_backbone(name, "imagenet" if weights == "imagenet" else "none", truncate, padding)
        else:
            net = _resnet_unstrided(name, weights, padding)
    else:
        raise UserFacingError(f"model.backbone: {name!r} is not a PIP-Net backbone; known: {', '.join(NETS)}")
    if weights not in ("none", "imagenet"):
        _load_file(net, Path(weights).expanduser())
    return net


def last_conv_channels(net: nn.Module) -> int:
    """Output channels of the last Conv2d (how the authors size the prototype layer)."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels)


# Which backbone parameters train when (authors' util/args.py get_optimizer_nn):
# "head" (their params_to_train) and "late" (params_to_freeze) train in pretraining and from
# the first unfrozen epoch on; "early" (params_backbone) only after `freeze_epochs`; "fixed" never.
BACKBONE_GROUPS = ("head", "late", "early", "fixed")


def backbone_groups(net: nn.Module, name: str, train_stem: bool = False) -> dict[str, list[str]]:
    """Backbone parameter names by training group.

    ConvNeXt (theirs): features.7.2 head; the rest of features.6-7 late; all else early.
    ResNet (theirs for ResNet-50: layer4.2 head, layer3-4 late, layer2 early, stem and layer1
    fixed), applied to every depth and to truncated ResNets by position: the last block of
    the last kept stage is head, the last two kept stages late, the stage before early, the
    rest fixed; `train_stem` makes those early instead (a backbone trained from scratch).
    The authors' code gives ResNet-18/34/101/152 no backbone group at all (their test is
    `'resnet50' in args.net`), so only the add-on trains there: docs/DEVIATIONS.md.
    """
    groups: dict[str, list[str]] = {g: [] for g in BACKBONE_GROUPS}
    if name in CONVNEXT_THRESHOLDS:
        for pname, _ in net.named_parameters():
            if pname.startswith("features.7.2."):
                groups["head"].append(pname)
            elif pname.startswith(("features.7.", "features.6.")):
                groups["late"].append(pname)
            else:
                groups["early"].append(pname)
        return groups
    kept = [s for s in ("layer1", "layer2", "layer3", "layer4") if hasattr(net, s)]
    last_block = f"{kept[-1]}.{len(getattr(net, kept[-1])) - 1}."
    for pname, _ in net.named_parameters():
        stage = pname.split(".")[0]
        pos = len(kept) - 1 - kept.index(stage) if stage in kept else len(kept)
        if pname.startswith(last_block):
            groups["head"].append(pname)
        elif pos <= 1:
            groups["late"].append(pname)
        elif pos == 2:
            groups["early"].append(pname)
        else:
            groups["early" if train_stem else "fixed"].append(pname)
    return groups
