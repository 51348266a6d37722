"""Import a checkpoint written by the authors' PIP-Net code (M-Nauta/PIPNet).

Their main.py saves `{"model_state_dict": net.state_dict(), "optimizer_net_state_dict": ...,
["optimizer_classifier_state_dict": ...]}` of the model wrapped in nn.DataParallel, so
every key starts with `module.`; files saved from the bare model lack it. Read with the
restricted loader (core.unpickle.restricted_load: torch.load(weights_only=True)),
nothing of theirs runs. Key names, theirs -> ours:

    _net.*                          -> backbone.*      (torchvision names in both)
    _add_on.0.weight / .bias        -> add_on.weight / .bias   (only with --num_features > 0)
    _classification.weight          -> classifier.weight (C, M)
    _classification.normalization_multiplier -> classifier.normalization_multiplier
    _classification.bias            -> classifier.bias (only with --bias)
    _multiplier                     -> (the same tensor as the multiplier: their PIPNet also
                                        holds it as an attribute, so it is saved twice)

The architecture is read from the keys: ConvNeXt (`_net.features.*`) or a ResNet (depth
from its blocks); a 1x1 add-on when `_add_on.0.weight` exists; C and M from the
classifier. The strides are not in the file: ConvNeXt is taken as convnext_tiny_26 (the
authors' default) unless `net="convnext_tiny_13"` is given.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from core.errors import CheckpointError
from core.unpickle import restricted_load
from core.pipnet.model import PIPNet, PIPNetConfig

RESNET_BLOCKS = {(2, 2, 2, 2, False): "resnet18", (3, 4, 6, 3, False): "resnet34", (3, 4, 6, 3, True): "resnet50",
                 (3, 4, 23, 3, True): "resnet101", (3, 8, 36, 3, True): "resnet152"}
PREFIXES = (("_net.", "backbone."), ("_add_on.0.", "add_on."), ("_classification.", "classifier."))


def _state_of(obj, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not isinstance(obj.get("model_state_dict"), dict):
        found = sorted(obj)[:4] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{where}: not a PIP-Net checkpoint of the authors' code: no 'model_state_dict' "
                              f"(found {found})")
    state = obj["model_state_dict"]
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{where}: model_state_dict entry {bad[0]!r} is not a tensor")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def detect_net(state: dict, where: str, net: str | None = None) -> str:
    """Backbone name from the keys; `net` picks the ConvNeXt variant (strides are not stored)."""
    if any(k.startswith("_net.features.") for k in state):
        net = net or "convnext_tiny_26"
        if not net.startswith("convnext_tiny_"):
            raise CheckpointError(f"{where}: holds a ConvNeXt backbone, not {net!r}")
        return net
    blocks = []
    for stage in range(1, 5):
        idx = {int(m.group(1)) for k in state for m in [re.match(rf"_net\.layer{stage}\.(\d+)\.", k)] if m}
        if not idx:
            raise CheckpointError(f"{where}: missing key '_net.layer{stage}.0.conv1.weight': neither a ConvNeXt "
                                  "nor a ResNet PIP-Net")
        blocks.append(max(idx) + 1)
    bottleneck = "_net.layer1.0.conv3.weight" in state
    name = RESNET_BLOCKS.get((*blocks, bottleneck))
    if name is None:
        raise CheckpointError(f"{where}: ResNet with blocks {blocks} is none of {', '.join(RESNET_BLOCKS.values())}")
    if net and net.replace("_inat", "") != name:
        raise CheckpointError(f"{where}: holds a {name} backbone, not {net!r}")
    return name


def convert(state: dict, where: str, net: str | None = None) -> tuple[PIPNetConfig, dict[str, torch.Tensor]]:
    """(our config, our state dict) from the authors' (prefix-free) state dict."""
    if "_classification.weight" not in state:
        raise CheckpointError(f"{where}: missing key '_classification.weight': not a PIP-Net model")
    weight = state["_classification.weight"]
    if weight.dim() != 2:
        raise CheckpointError(f"{where}: '_classification.weight' has shape {tuple(weight.shape)}, expected (C, M)")
    add_on = state.get("_add_on.0.weight")
    config = PIPNetConfig(backbone=detect_net(state, where, net), weights="none",
                          num_prototypes=int(add_on.shape[0]) if add_on is not None else None,
                          bias="_classification.bias" in state, num_classes=int(weight.shape[0]))
    ours: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "_multiplier":   # their PIPNet keeps the classifier's multiplier as its own attribute too
            ours.setdefault("classifier.normalization_multiplier", value)
            continue
        for theirs, mine in PREFIXES:
            if key.startswith(theirs):
                ours[mine + key[len(theirs):]] = value
                break
        else:
            raise CheckpointError(f"{where}: unexpected key {key!r} (not of a PIP-Net model)")
    return config, ours


def load_official_pipnet(path, net: str | None = None) -> tuple[PIPNet, dict]:
    """-> (our PIPNet in eval mode with the authors' weights, report)."""
    where = str(path)
    state = _state_of(restricted_load(Path(path)), where)
    config, ours = convert(state, where, net)
    model = PIPNet(config)
    own = model.state_dict()
    missing = [k for k in own if k not in ours]
    if missing:
        theirs = next((t + missing[0][len(m):] for t, m in PREFIXES if missing[0].startswith(m)), missing[0])
        raise CheckpointError(f"{where}: missing key {theirs!r} ({len(missing)} missing) for a {config.backbone} "
                              "PIP-Net")
    unexpected = [k for k in ours if k not in own]
    if unexpected:
        theirs = next(t + unexpected[0][len(m):] for t, m in PREFIXES if unexpected[0].startswith(m))
        raise CheckpointError(f"{where}: unexpected key {theirs!r} ({len(unexpected)} unexpected) for a "
                              f"{config.backbone} PIP-Net")
    for key, value in ours.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(f"{where}: key {key!r} has shape {tuple(value.shape)}, expected "
                                  f"{tuple(own[key].shape)} for a {config.backbone} PIP-Net")
    model.load_state_dict(ours, strict=True)
    model.eval()
    report = {"backbone": config.backbone, "num_prototypes": model.num_prototypes, "num_classes": model.num_classes,
              "add_on": config.num_prototypes is not None, "bias": config.bias,
              "nonzero_connections": int((model.class_connections() > 0).sum())}
    return model, report
