"""PIP-Net (Nauta et al., CVPR 2023): patch-based intuitive prototypes.

    x --backbone--> z (B, D, H, W) --[1x1 conv]--> softmax over channels --> P (B, M, H, W)
      --max over H, W--> p (B, M) --non-negative linear--> logits (B, C)

- P[b, m, h, w]: how much patch (h, w) of image b is prototype m; softmax over the M
  prototype channels, so every patch is (a mixture of) prototypes summing to 1.
- p[b, m] = max_{h,w} P: the presence of prototype m anywhere in the image.
- logits = p @ relu(W).T (+ bias): the class connections W are used through a ReLU, so
  a prototype can only add evidence for a class (the authors' NonNegLinear).
- The 1x1 convolution is only there when `num_prototypes` is set; the authors' default
  (`num_features 0`) takes the backbone's channels as prototypes (768 for ConvNeXt-tiny).
- Inference (`inference=True`, the authors' evaluation): presences below 0.1 count as 0.

Parameter names map to the authors' `PIPNet` one to one: `_net.` -> `backbone.`,
`_add_on.0.` -> `add_on.`, `_classification.` -> `classifier.` (core/pipnet/official.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserFacingError
from core.model.contract import ModelOutput, PrototypeArchitecture
from core.pipnet.features import backbone_groups, build_features, last_conv_channels

INFERENCE_THRESHOLD = 0.1   # authors' forward(inference=True): presences < 0.1 ignored


@dataclass
class PIPNetConfig:
    """Architecture choices; defaults are the authors' CUB-200-2011 run (used_arguments/CUB_arguments.txt)."""

    architecture: str = "pipnet"
    backbone: str = "convnext_tiny_26"   # core.pipnet.features.NETS
    weights: str = "imagenet"            # "none" | "imagenet" | a local state-dict file
    truncate: str | None = None          # ResNet only: stop after "layer2" | "layer3" (torchvision strides)
    backbone_padding: str = "zeros"      # ResNet: "zeros" | "replicate" | "reflect"
    train_stem: bool = False             # ResNet: stem and early stages train (from scratch) instead of fixed
    num_prototypes: int | None = None    # None/0: backbone channels, no add-on conv (authors' default)
    bias: bool = False                   # authors' --bias (off in their runs)
    num_classes: int | None = None       # C; filled from the data set

    @classmethod
    def from_dict(cls, data: dict, where: str = "model") -> PIPNetConfig:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise UserFacingError(f"{where}.{key}: unknown field; known: {', '.join(sorted(known))}")
        out = cls(**data)
        if out.architecture != "pipnet":
            raise UserFacingError(f"{where}.architecture: {out.architecture!r}, expected 'pipnet'")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PIPNetOutput(ModelOutput):
    """One forward pass: the contract's `ModelOutput` (core.model.contract) plus PIP-Net's names.

    logits (B, C); maps (B, M, H, W): per-prototype activation maps at feature resolution
    (the softmax over prototypes, each in [0, 1]); similarities = `presence` (B, M): their
    max over the grid (after the 0.1 threshold when `inference`); class_connections (C, M):
    relu(W), the weight of prototype m for class c; min_distances None (no distances).
    """

    class_connections: torch.Tensor | None = None

    @property
    def presence(self) -> torch.Tensor:
        return self.similarities


class NonNegLinear(nn.Module):
    """Linear layer used through relu(weight): logits = x @ relu(W).T + b.

    `normalization_multiplier` (init 2, not trained, clamped >= 1) is not used here: the
    classification loss raises the logits to this power (core/pipnet/losses.py).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.normalization_multiplier = nn.Parameter(torch.ones(1), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisation (main.py): W ~ N(1, 0.1), bias 0, multiplier 2."""
        with torch.no_grad():
            nn.init.normal_(self.weight, mean=1.0, std=0.1)
            self.normalization_multiplier.fill_(2.0)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, torch.relu(self.weight), self.bias)

    @torch.no_grad()
    def clamp_(self, shrink: float = 1e-3) -> None:
        """After every second-stage step (authors' train.py): W <- max(W - shrink, 0) (small
        weights become exactly 0: sparsity), multiplier >= 1, bias >= 0."""
        self.weight.copy_(torch.clamp(self.weight - shrink, min=0.0))
        self.normalization_multiplier.clamp_(min=1.0)
        if self.bias is not None:
            self.bias.clamp_(min=0.0)


class PIPNet(PrototypeArchitecture):
    """backbone -> [1x1 conv] -> softmax over prototypes -> max-pool -> NonNegLinear.

    The model contract (core.model.contract.PrototypeArchitecture): `features` is the
    backbone output (the 1x1 convolution's input), `prototype_maps` the softmax over
    prototypes, similarities the max-pooled presences, `class_connections` relu(W). Without a
    bias (the authors' runs and every config here) logits = similarities @ relu(W).T exactly;
    with `bias` the logits add it (an imported `--bias` checkpoint): class evidence that no
    prototype carries. The normalization multiplier never enters the logits (only the loss).

    `config` is a PIPNetConfig or the trainer's ModelConfig (same field names).
    """

    GROUPS = ("head", "late", "early", "fixed", "add_on", "classifier")

    def __init__(self, config):
        super().__init__()
        if not config.num_classes or config.num_classes < 1:
            raise UserFacingError("model.num_classes: must be a positive number of classes")
        self.config = config
        self.backbone = build_features(config.backbone, config.weights, config.truncate, config.backbone_padding)
        channels = last_conv_channels(self.backbone)
        if config.num_prototypes:
            self.add_on: nn.Module = nn.Conv2d(channels, int(config.num_prototypes), kernel_size=1)
            # authors: xavier_uniform with gain calculate_gain('sigmoid') (= 1); conv's default bias
            nn.init.xavier_uniform_(self.add_on.weight, gain=nn.init.calculate_gain("sigmoid"))
            self._num_prototypes = int(config.num_prototypes)
        else:
            self.add_on = nn.Identity()
            self._num_prototypes = channels
        self.classifier = NonNegLinear(self._num_prototypes, int(config.num_classes), bias=bool(config.bias))

    @property
    def num_classes(self) -> int:
        return int(self.classifier.weight.shape[0])

    @property
    def num_prototypes(self) -> int:
        return self._num_prototypes

    @property
    def image_stride(self) -> int:
        return int(self.backbone.stride)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) backbone output: the cells the 1x1 convolution turns into prototype scores."""
        return self.backbone(x)

    def prototype_maps(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) features -> (B, M, H, W) softmax over prototypes of the add-on output."""
        return torch.softmax(self.add_on(features), dim=1)

    def forward(self, x: torch.Tensor, inference: bool = False) -> PIPNetOutput:
        maps = self.prototype_maps(self.features(x))
        presence = torch.amax(maps, dim=(2, 3))
        if inference:
            presence = torch.where(presence < INFERENCE_THRESHOLD, torch.zeros_like(presence), presence)
        logits = self.classifier(presence)
        return PIPNetOutput(logits, None, presence, maps=maps, class_connections=torch.relu(self.classifier.weight))

    def class_connections(self) -> torch.Tensor:
        """(C, M) relu(W)."""
        return torch.relu(self.classifier.weight)

    def class_prototype_mask(self) -> torch.Tensor:
        """(C, M) bool: relu(W) > 0 (the clamping makes small weights exactly 0)."""
        return self.class_connections() > 0

    def prototypes_in_use(self, threshold: float = 1e-3) -> torch.Tensor:
        """(M,) bool: prototypes with a class connection above `threshold` (the authors' 'relevant')."""
        return (self.class_connections() > threshold).any(dim=0)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by training group (GROUPS): backbone groups from `backbone_groups`,
        then the add-on convolution and the classifier (weight and bias; the
        normalization multiplier never trains)."""
        named = dict(self.backbone.named_parameters())
        groups: dict[str, list[nn.Parameter]] = {
            g: [named[n] for n in names]
            for g, names in backbone_groups(self.backbone, self.config.backbone, self.config.train_stem).items()}
        groups["add_on"] = list(self.add_on.parameters())
        groups["classifier"] = [p for n, p in self.classifier.named_parameters() if n != "normalization_multiplier"]
        return groups

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return self.param_groups()

    def set_trainable(self, groups: set[str] | list[str]) -> None:
        """requires_grad on exactly `groups` (the multiplier never trains). BatchNorm of
        frozen blocks stays in train mode, as in the authors' code (statistics keep updating)."""
        for p in self.parameters():
            p.requires_grad_(False)
        named = self.param_groups()
        for name in groups:
            for p in named[name]:
                p.requires_grad_(True)


def build_pipnet(config: PIPNetConfig | dict) -> PIPNet:
    if isinstance(config, dict):
        config = PIPNetConfig.from_dict(config)
    return PIPNet(config)
