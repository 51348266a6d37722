"""Official ProtoPool / ProtoPNet / ProtoPShare weights -> a model of this toolkit.

The authors' forward passes (read from gmum/ProtoPool, cfchen-duke/ProtoPNet and
gmum/ProtoPShare `model.py`), and what they become here:

- all three: `features` (their ResNet_features / DenseNet_features / VGG_features:
  torchvision's layer names (VGG: `features.N`, all five max-pools), no pooling, no
  classifier; DenseNet with a final ReLU) -> `backbone`; `add_on_layers` (1x1
  convolutions, sigmoid last: 'regular' = all D wide, or ProtoPNet's 'bottleneck' =
  pairs halving the width down to D) -> `add_on` (`add_on_type`); `prototype_vectors`
  (M, D, 1, 1) -> prototypes (M, D); squared L2 distances `relu(||z||^2 + (-2 z.p +
  ||p||^2))` per patch by 1x1 convolutions, in their order (`distance_kernel: conv`);
  `ones` is dropped.
- ProtoPNet / ProtoPShare (`PPNet`): logits = last_layer(log((min_z d + 1) / (min_z d + eps))),
  last_layer (C, M) without bias -> our ProtoPNet with similarity `protopnet`. The class
  identity (M, C): `class_identity` (pickled, else a state dict's entry, else inferred or
  given by --class-identity); for ProtoPShare a prototype also serves every class whose
  last-layer weight on it is > 0.5 (merged prototypes carry their partners' weights).
- ProtoPool (`PrototypeChooser`): proto_presence (C, M, K) = slot logits over prototypes;
  evaluation (`gumbel_scale=0`) mixes distances with softmax(proto_presence, dim=1):
  x = g(sum_p pp min d) - g(sum_p pp mean d), then last_layer(x.flatten()) (C, C*K) when
  trained with `--last_layer`, else x.sum(-1). -> our ProtoPool with similarity
  `focal-code`, slot logits proto_presence.permute(0, 2, 1), and the last layer given (or
  the own-class ones that equal the sum). Our evaluation uses the hard assignment; it
  equals theirs when softmax(proto_presence) is binarised, as after their training
  (reported as `assignment_gap` = the largest 1 - max_p softmax; logits then differ by at
  most about gap x the distances involved).
"""
from __future__ import annotations

import re

import torch

from core.errors import CheckpointError
from core.model.backbones import bottleneck_convs

KINDS = ("protopool", "protopnet", "protopshare")
RESNETS = {(2, 2, 2, 2, False): "resnet18", (3, 4, 6, 3, False): "resnet34", (3, 4, 6, 3, True): "resnet50",
           (3, 4, 23, 3, True): "resnet101", (3, 8, 36, 3, True): "resnet152"}
IGNORED = ("ones", "alfa")


DENSENETS = {((6, 12, 24, 16), 64): "densenet121", ((6, 12, 36, 24), 96): "densenet161"}


def _detect_densenet(state: dict, where: str) -> str:
    """Their DenseNet_features: `features.features.{conv0, norm0, denseblockN.denselayerM, transitionN,
    norm5}` (torchvision's names) and a final ReLU, as our DenseNet backbone."""
    layers = []
    for block in range(1, 5):
        idx = {int(m.group(1)) for k in state
               for m in [re.match(rf"features\.features\.denseblock{block}\.denselayer(\d+)\.", k)] if m}
        layers.append(max(idx) if idx else 0)
    stem = state.get("features.features.conv0.weight")
    name = DENSENETS.get((tuple(layers), int(stem.shape[0]) if stem is not None else 0))
    if name is None:
        raise CheckpointError(f"{where}: DenseNet with dense layers {layers} is none of "
                              f"{', '.join(DENSENETS.values())} (the DenseNets this toolkit builds)")
    return name


VGGS = {8: "vgg11", 10: "vgg13", 13: "vgg16", 16: "vgg19"}


def _detect_vgg(state: dict, where: str) -> str:
    """Their VGG_features: `features.features.N` = torchvision's `features.N` (same layer list)."""
    convs = [k for k, v in state.items() if re.match(r"features\.features\.\d+\.weight$", k) and v.dim() == 4]
    name = VGGS.get(len(convs))
    if name is None:
        raise CheckpointError(f"{where}: VGG with {len(convs)} convolutions is none of VGG-11/13/16/19")
    batch_norm = any(re.match(r"features\.features\.\d+\.running_mean$", k) for k in state)
    return name + ("_bn" if batch_norm else "")


def detect_backbone(state: dict, where: str) -> str:
    if any(k.startswith("features.features.denseblock") for k in state):
        return _detect_densenet(state, where)
    if any(re.match(r"features\.features\.\d+\.", k) for k in state):
        return _detect_vgg(state, where)
    blocks = []
    for stage in range(1, 5):
        idx = {int(m.group(1)) for k in state for m in [re.match(rf"features\.layer{stage}\.(\d+)\.", k)] if m}
        if not idx:
            raise CheckpointError(f"{where}: no 'features.layer{stage}.*' weights: not a ResNet backbone "
                                  "(only ResNet, DenseNet-121/161 and VGG backbones can be imported)")
        blocks.append(max(idx) + 1)
    bottleneck = any(k.startswith("features.layer1.0.conv3.") for k in state)
    name = RESNETS.get((*blocks, bottleneck))
    if name is None:
        raise CheckpointError(f"{where}: ResNet with blocks {blocks} is none of {', '.join(sorted(set(RESNETS.values())))}")
    return name


def detect_add_on(state: dict, depth: int, where: str) -> tuple[str, int]:
    """(add-on type, number of 1x1 convolutions): "regular" = every convolution of width D
    (conv, ReLU, ..., conv, sigmoid); "bottleneck" = ProtoPNet's halving pairs down to D."""
    convs = sorted(int(m.group(1)) for k in state for m in [re.match(r"add_on_layers\.(\d+)\.weight$", k)] if m)
    if not convs:
        raise CheckpointError(f"{where}: no 'add_on_layers.*.weight': not an official ProtoPNet/ProtoPool model")
    shapes = [tuple(int(n) for n in state[f"add_on_layers.{i}.weight"].shape[1::-1]) for i in convs]
    if convs == list(range(0, 2 * len(convs), 2)):
        if all(out == depth for _, out in shapes) and all(c_in == depth for c_in, _ in shapes[1:]):
            return "regular", len(convs)
        if shapes == bottleneck_convs(shapes[0][0], depth):
            return "bottleneck", len(convs)
    raise CheckpointError(
        f"{where}: add-on widths {[out for _, out in shapes]} (layers {convs}) are neither ProtoPNet's 'regular' "
        f"add-on (every layer {depth} wide) nor its 'bottleneck' from {shapes[0][0]} channels "
        f"({[out for _, out in bottleneck_convs(shapes[0][0], depth)]})")


def _strip(state: dict) -> dict:
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def class_identity(state: dict, extras: dict, w: torch.Tensor, option, where: str) -> tuple[torch.Tensor, str]:
    """(M, C) class identity of a ProtoPNet/ProtoPShare model and where it came from.

    In this order: `option` (--class-identity: "blocks", "last-layer" or the classes of
    each prototype read from a file); the pickled attribute; a `prototype_class_identity` entry of the
    state dict; else (a bare state dict) inferred: ProtoPNet's order j // (M / C) when it
    applies and agrees with the last layer, else each prototype's strongest last-layer
    class. Both applying and disagreeing is an error asking for the flag.
    """
    c, m = int(w.shape[0]), int(w.shape[1])
    blocks = torch.zeros(m, c)
    if m % c == 0:
        blocks[torch.arange(m), torch.arange(m) // (m // c)] = 1.0
    strongest = torch.zeros(m, c)
    strongest[torch.arange(m), w.argmax(dim=0)] = 1.0
    if isinstance(option, list):
        flag = f"--class-identity {getattr(option, 'source', '')}".rstrip()
        if len(option) != m:
            raise CheckpointError(f"{flag}: {len(option)} prototypes listed, the model has {m}")
        ident, source = torch.zeros(m, c), "file"
        for j, classes in enumerate(option):
            for k in classes:
                if not 0 <= k < c:
                    raise CheckpointError(f"{flag}: prototype {j}: class {k} is not in 0..{c - 1}")
                ident[j, k] = 1.0
    elif option == "blocks":
        if m % c:
            raise CheckpointError(f"--class-identity blocks: {m} prototypes are not a multiple of {c} classes")
        ident, source = blocks, "blocks"
    elif option == "last-layer":
        ident, source = strongest, "last-layer"
    elif extras.get("prototype_class_identity") is not None:
        ident, source = extras["prototype_class_identity"], "pickled"
    elif "prototype_class_identity" in state:
        ident, source = state["prototype_class_identity"], "state-dict"
    elif m % c:
        ident, source = strongest, "last-layer"
    else:
        differ = (blocks != strongest).any(dim=1).nonzero().flatten().tolist()
        if differ:
            j = differ[0]
            raise CheckpointError(
                f"{where}: a state dict without prototype_class_identity: by ProtoPNet's order prototype {j} serves "
                f"class {j // (m // c)}, but its strongest last-layer weight is on class {int(w[:, j].argmax())} "
                f"({len(differ)} such prototypes); pass --class-identity blocks, last-layer or FILE")
        ident, source = blocks, "blocks"
    ident = torch.as_tensor(ident, dtype=torch.float32)
    if tuple(ident.shape) != (m, c):
        raise CheckpointError(f"{where}: prototype_class_identity has shape {tuple(ident.shape)}, expected ({m}, {c})")
    return ident, source


class IdentityRows(list):
    """The classes of each prototype, read from `source` (a --class-identity file)."""

    source = ""


def read_class_identity(path) -> IdentityRows:
    """--class-identity FILE -> for each prototype, the 0-based classes it serves. A text file
    (one line per prototype, class indices separated by spaces or commas) or a .npy array:
    (M,) class indices or (M, C) 0/1 (read without pickle)."""
    import numpy as np

    rows = IdentityRows()
    rows.source = str(path)
    try:
        if str(path).endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
            if arr.ndim not in (1, 2):
                raise CheckpointError(f"--class-identity {path}: array of shape {arr.shape}, expected (M,) or (M, C)")
            rows.extend([[int(v)] for v in arr] if arr.ndim == 1 else [np.nonzero(r)[0].tolist() for r in arr])
            return rows
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append([int(v) for v in line.replace(",", " ").split()])
                    except ValueError:
                        raise CheckpointError(f"--class-identity {path}: line {n}: {line.strip()[:40]!r} is not "
                                              "0-based class indices") from None
        return rows
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"--class-identity {path}: cannot read ({exc})") from None


def convert(state: dict, extras: dict, kind: str, where: str,
            class_identity_option=None) -> tuple[dict, dict, dict]:
    """-> (model config dict, our state dict entries, report) for `kind`.

    `class_identity_option` (ProtoPNet/ProtoPShare): see `class_identity`."""
    if kind not in KINDS:
        raise CheckpointError(f"--kind: {kind!r} is not one of {', '.join(KINDS)}")
    state = _strip(state)
    cls = extras.get("class")
    if cls == "model.PrototypeChooser" and kind != "protopool":
        raise CheckpointError(f"{where}: holds a ProtoPool model (PrototypeChooser), not --kind {kind}")
    if cls == "model.PPNet" and kind == "protopool":
        raise CheckpointError(f"{where}: holds a ProtoPNet/ProtoPShare model (PPNet), not --kind protopool")
    activation = extras.get("prototype_activation_function", "log")
    if activation != "log":
        raise CheckpointError(f"{where}: prototype_activation_function {activation!r}: only 'log' is supported")
    if "prototype_vectors" not in state:
        raise CheckpointError(f"{where}: no 'prototype_vectors': not an official ProtoPNet/ProtoPool model")
    protos = state["prototype_vectors"]
    if protos.dim() != 4 or tuple(protos.shape[2:]) != (1, 1):
        raise CheckpointError(f"{where}: 'prototype_vectors' has shape {tuple(protos.shape)}, expected (M, D, 1, 1)")
    m, depth = int(protos.shape[0]), int(protos.shape[1])
    backbone = detect_backbone(state, where)
    add_on_type, layers = detect_add_on(state, depth, where)
    epsilon = float(extras.get("epsilon", 1e-4))
    ours: dict[str, torch.Tensor] = {}
    used = {"prototype_vectors"}
    for k, v in state.items():
        if k.startswith("features."):
            ours["backbone." + k[len("features."):]] = v
            used.add(k)
        elif k.startswith("add_on_layers."):
            ours["add_on." + k[len("add_on_layers."):]] = v
            used.add(k)
    ours["prototype_layer.prototypes"] = protos.reshape(m, depth).clone()
    report: dict = {"kind": kind, "official_class": cls, "backbone": backbone, "add_on_layers": layers,
                    "add_on_type": add_on_type, "num_prototypes": m, "prototype_depth": depth}
    config = {"architecture": "protopool" if kind == "protopool" else "protopnet", "backbone": backbone,
              "weights": "none", "truncate": None, "prototype_depth": depth, "add_on_layers": layers,
              "add_on_type": add_on_type, "num_prototypes": m, "epsilon": epsilon,
              "distance_kernel": "conv"}   # their summation order: their float32 logits bit for bit
    if kind == "protopool":
        if "proto_presence" not in state:
            raise CheckpointError(f"{where}: no 'proto_presence': not a ProtoPool (PrototypeChooser) model")
        presence = state["proto_presence"]
        if presence.dim() != 3 or presence.shape[1] != m:
            raise CheckpointError(f"{where}: 'proto_presence' has shape {tuple(presence.shape)}, expected (C, {m}, K)")
        c, k = int(presence.shape[0]), int(presence.shape[2])
        used.add("proto_presence")
        ours["slots.logits"] = presence.permute(0, 2, 1).contiguous().clone()
        if "last_layer.weight" in state:
            w = state["last_layer.weight"]
            if tuple(w.shape) != (c, c * k):
                raise CheckpointError(f"{where}: 'last_layer.weight' has shape {tuple(w.shape)}, expected ({c}, {c * k})")
            ours["last_layer.weight"] = w.clone()
            used.add("last_layer.weight")
        else:
            ours["last_layer.weight"] = torch.block_diag(*[torch.ones(1, k) for _ in range(c)])
        soft = torch.softmax(presence.double(), dim=1)
        report.update(num_classes=c, num_slots=k, last_layer="given" if "last_layer.weight" in used else "sum",
                      assignment_gap=float((1.0 - soft.amax(dim=1)).max()))
        config.update(num_classes=c, num_slots=k, similarity="focal-code")
    else:
        if "last_layer.weight" not in state:
            raise CheckpointError(f"{where}: no 'last_layer.weight': not an official ProtoPNet model")
        w = state["last_layer.weight"]
        if w.dim() != 2 or w.shape[1] != m:
            raise CheckpointError(f"{where}: 'last_layer.weight' has shape {tuple(w.shape)}, expected (C, {m})")
        c = int(w.shape[0])
        used.add("last_layer.weight")
        ident, source = class_identity(state, extras, w, class_identity_option, where)
        if "prototype_class_identity" in state:
            used.add("prototype_class_identity")
        if kind == "protopshare":
            ident = ((ident > 0) | (w.t() > 0.5)).float()
        ours["last_layer.weight"] = w.clone()
        ours["prototype_class_identity"] = ident.clone()
        report.update(num_classes=c, class_identity=source, shared_prototypes=int((ident.sum(dim=1) > 1).sum()))
        config.update(num_classes=c, similarity="protopnet", prototypes_per_class=max(1, m // c))
    unknown = [k for k in state if k not in used and k.split(".")[-1] not in IGNORED and k not in IGNORED]
    if unknown:
        raise CheckpointError(f"{where}: unexpected official weight {unknown[0]!r} ({len(unknown)} not understood)")
    return config, ours, report


def build_imported(state: dict, extras: dict, kind: str, where: str, class_identity_option=None):
    """-> (our model in eval mode, its model config dict, report)."""
    from core.architectures import build_model
    from core.training.checkpoint import load_state

    config, ours, report = convert(state, extras, kind, where, class_identity_option)
    model = build_model(config)
    full = model.state_dict()
    missing = [k for k, _ in model.named_parameters() if k not in ours]
    if missing:
        raise CheckpointError(f"{where}: the official weights give no value for {missing[0]!r} "
                              f"({len(missing)} missing)")
    full.update(ours)
    load_state(model, full, where)
    model.eval()
    return model, model.config.to_dict(), report
