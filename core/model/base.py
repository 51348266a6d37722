"""What every prototype architecture shares: f (backbone + add-on), g's prototypes, h.

Subclasses (ProtoPool, ProtoPNet) only say how prototype activations become class
logits and which prototypes serve which class. Parameter groups are named so the
trainer can freeze or give them their own learning rates; frozen modules with
BatchNorm or sampled assignments stay in eval mode (SPEC: frozen BN stays in eval).
"""
from __future__ import annotations

import torch
from torch import nn

from core.model.backbones import build_add_on, build_backbone
from core.model.config import ModelConfig
from core.model.contract import ModelOutput, PrototypeArchitecture
from core.model.prototype_pool import PrototypeLayer
from core.model.similarity import log_similarity

__all__ = ["ModelOutput", "PrototypeModel"]


class PrototypeModel(PrototypeArchitecture):
    """h(g(f(x))) with named parameter groups: backbone, add_on, prototypes, slots, last_layer.

    The distance-based family of the model contract (core.model.contract): prototypes are
    vectors in feature space, a patch's similarity is log((d + 1) / (d + eps)) of its squared
    distance d.
    """

    GROUPS = ("backbone", "add_on", "prototypes", "slots", "last_layer")

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, config.weights, config.truncate,
                                       getattr(config, "backbone_padding", "zeros"))
        self.add_on = build_add_on(self.backbone.out_channels, config.prototype_depth, config.add_on_layers,
                                   config.add_on_type)
        self.prototype_layer = PrototypeLayer(
            self._initial_num_prototypes(), config.prototype_depth, config.similarity, config.epsilon,
            config.distance_kernel)
        self._frozen: set[str] = set()

    # -- to be provided by architectures -------------------------------------------------
    def _initial_num_prototypes(self) -> int:
        raise NotImplementedError

    def class_scores(self, similarities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def hard_assignment(self) -> torch.Tensor:
        raise NotImplementedError

    def class_prototype_mask(self) -> torch.Tensor:
        """(C, M) bool: prototype m serves class c (hard assignment / class identity)."""
        raise NotImplementedError

    def last_layer_l1_mask(self) -> torch.Tensor:
        """Same shape as last_layer.weight: 1 on the off-class weights the L1 term penalises."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return int(self.config.num_classes)

    @property
    def num_prototypes(self) -> int:
        return self.prototype_layer.num_prototypes

    @property
    def prototypes(self) -> nn.Parameter:
        return self.prototype_layer.prototypes

    @property
    def epsilon(self) -> float:
        return self.prototype_layer.epsilon

    @property
    def image_stride(self) -> int:
        return int(self.backbone.stride)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Z_x = add-on(backbone(x)): (B, D, H, W), values in (0, 1)."""
        return self.add_on(self.backbone(x))

    def patch_distances(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M, H, W) squared L2 distances between each patch of x and each prototype."""
        return self.prototype_layer.distances(self.features(x))

    def prototype_maps(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, M, H, W) log((d + 1) / (d + eps)) per cell."""
        return log_similarity(self.prototype_layer.distances(features), self.epsilon)

    def patch_similarities(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M, H, W) log((d + 1) / (d + eps)) per patch."""
        return log_similarity(self.patch_distances(x), self.epsilon)

    def prototype_distances(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, M, H, W) squared L2 distances to the prototypes."""
        return self.prototype_layer.distances(features)

    def prototype_vectors(self) -> torch.Tensor:
        return self.prototypes

    def evidence(self, x: torch.Tensor) -> ModelOutput:
        """One pass: per-prototype similarities g_p from the distances, logits from them
        through the class layer (for `focal-code` these are the per-prototype values an
        explanation decomposes, not the forward's distance mixture), maps = log-similarity."""
        dist, min_dist, sim = self.prototype_layer(self.features(x))
        logits, assignment = self.class_scores(sim)
        return ModelOutput(logits=logits, min_distances=min_dist, similarities=sim, assignment=assignment,
                           maps=log_similarity(dist, self.epsilon))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        _, min_dist, sim = self.prototype_layer(self.features(x))
        logits, assignment = self.class_scores(sim)
        return ModelOutput(logits=logits, min_distances=min_dist, similarities=sim, assignment=assignment)

    # -- freezing and parameter groups ------------------------------------------------------
    def _group_modules(self) -> dict[str, list[nn.Module]]:
        return {"backbone": [self.backbone], "add_on": [self.add_on],
                "prototypes": [self.prototype_layer], "slots": self._slot_modules(),
                "last_layer": [self.last_layer]}

    def _slot_modules(self) -> list[nn.Module]:
        return []

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named groups for the optimizer (empty list when an architecture lacks a group)."""
        return {name: [p for m in mods for p in m.parameters()] for name, mods in self._group_modules().items()}

    def set_trainable(self, groups: set[str] | list[str]) -> None:
        """Train only `groups`; the others get requires_grad=False and stay in eval mode."""
        groups = set(groups)
        for name, params in self.parameter_groups().items():
            for p in params:
                p.requires_grad_(name in groups)
        self._frozen = {name for name in self.GROUPS if name not in groups}
        self.train(self.training)

    def train(self, mode: bool = True) -> PrototypeModel:
        super().train(mode)
        if mode:
            for name, mods in self._group_modules().items():
                if name in self._frozen:
                    for m in mods:
                        m.eval()
        return self
