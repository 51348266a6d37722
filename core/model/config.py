"""The model's part of the configuration: plain values, JSON-able, stored in checkpoints."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from common.names import canonical_similarity
from core.errors import UserFacingError


@dataclass
class ModelConfig:
    """Architecture choices; defaults are the paper's CUB-200-2011 ProtoPool setup."""

    architecture: str = "protopool"      # a key of core.architectures.ARCHITECTURES
    backbone: str = "resnet34"           # a key of core.model.backbones.BACKBONES
    weights: str = "imagenet"            # "none" | "imagenet" | path to a state dict
    truncate: str | None = None          # ResNet only: stop after "layer2" | "layer3" | "layer4"
    backbone_padding: str = "zeros"      # conv padding: "zeros" (torchvision) | "replicate" | "reflect"
    prototype_depth: int = 256           # D (128 for Stanford Cars)
    add_on_layers: int = 1               # 1x1 convolutions, sigmoid last (ProtoPool paper/code: 1; ProtoPShare: 2)
    add_on_type: str = "regular"         # "regular" (add_on_layers of width D) | "bottleneck" (ProtoPNet's halving pairs)
    num_prototypes: int | None = 202     # M; ProtoPNet: None = num_classes * prototypes_per_class
    num_slots: int = 10                  # K (ProtoPool)
    prototypes_per_class: int = 10       # ProtoPNet
    num_classes: int | None = None       # C; filled from the data set by the trainer
    similarity: str = "focal"            # common.names.SIMILARITIES: "focal" | "protopnet" | "focal-code"
    # ProtoPool's slot assignment in training: "gumbel" (paper) | "softmax" (the paper's
    # ablation w/o Gumbel: softmax(q) at temperature 1) | "softmax-annealed" (ours: w/o
    # Gumbel noise, softmax(q / tau)); evaluation is hard either way (core.model.prototype_pool)
    assignment: str = "gumbel"
    epsilon: float = 1e-4                # of log((d + 1) / (d + eps))
    distance_kernel: str = "matmul"      # "matmul" | "conv" (the official code's order; set for imported models)
    last_layer_negative: float = -0.5    # ProtoPNet's off-class init (ProtoPool uses 0)
    # PIP-Net (core/pipnet): its stem and early stages train (from scratch) instead of
    # staying fixed; its class layer has a (non-negative) bias (the authors' --bias)
    train_stem: bool = False
    bias: bool = False

    def __post_init__(self) -> None:
        # old spellings (common.names.OLD_SIMILARITY_NAMES) in older checkpoints, atlases and
        # configs are read as the one name; to_dict writes only that
        self.similarity = canonical_similarity(self.similarity)

    @classmethod
    def from_dict(cls, data: dict, where: str = "model") -> ModelConfig:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise UserFacingError(f"{where}.{key}: unknown field; known: {', '.join(sorted(known))}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)
