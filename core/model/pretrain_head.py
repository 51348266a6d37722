"""Backbone pretraining with a throw-away head: a stand-in for ImageNet weights offline.

`pretrain_phase(settings, config)` is a `TrainPhase` any architecture with a `backbone`
may declare first (ProtoPool and ProtoPNet do when `train.pretrain.epochs` > 0): it
trains only the backbone, through global pooling and a linear head (cross-entropy), and
with `train.pretrain_local` > 0 also a 1x1 local reconstruction head. Both heads are
thrown away; with `train.prototype_init_evidence` < 1 the class head is kept in the
run's carry (and last.pt) until k-means++ seeding has scored cells with it
(`evidence_cells`, core.model.seeding).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from core.model.contract import Batch, PhaseConfig, PhaseContext, TrainPhase
from core.model.losses import cross_entropy


class PretrainOutput(NamedTuple):
    logits: torch.Tensor
    local: torch.Tensor | None


class PretrainClassifier(nn.Module):
    """Backbone + global average (or max) pooling + linear head, for the pretraining phase.

    Stands in for ImageNet weights where none are available (offline CPU demo): the
    head is thrown away afterwards, only the backbone's weights stay in the model.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, pool: str = "avg", local_weight: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_channels, num_classes)
        self.pool = pool
        self.local_weight = float(local_weight)
        # local reconstruction: each feature cell predicts the mean colours of its own
        # 2 x 2 sub-squares of the input (12 numbers), so the cell must describe what lies
        # under it and not only the class (see TrainConfig.pretrain_local)
        self.local_head = nn.Conv2d(backbone.out_channels, 12, 1) if self.local_weight > 0 else None

    def forward(self, x: torch.Tensor) -> PretrainOutput:
        feats = self.backbone(x)
        pooled = feats.amax(dim=(2, 3)) if self.pool == "max" else feats.mean(dim=(2, 3))
        local = self.local_head(feats) if self.local_head is not None else None
        return PretrainOutput(self.head(pooled), local)

    @staticmethod
    def local_target(images: torch.Tensor, grid) -> torch.Tensor:
        """Mean input colour of each cell's 2 x 2 sub-squares, as (B, 12, H, W)."""
        sub = F.adaptive_avg_pool2d(images.float(), (2 * int(grid[0]), 2 * int(grid[1])))
        return F.pixel_unshuffle(sub, 2)


def pretrain_loss(classifier: nn.Module, out: PretrainOutput, batch: Batch) -> tuple[torch.Tensor, dict]:
    """Cross-entropy, plus the weighted local reconstruction term when there is a local head."""
    assert isinstance(classifier, PretrainClassifier)
    ce = cross_entropy(out.logits.float(), batch.targets)
    terms = {"cross_entropy": ce.detach()}
    loss = ce
    if out.local is not None:
        rec = F.mse_loss(out.local.float(), classifier.local_target(batch.inputs, out.local.shape[-2:]))
        loss = loss + classifier.local_weight * rec
        terms["local_reconstruction"] = rec.detach()
    return loss, terms


def evidence_cells(backbone_features: torch.Tensor, head_weight: torch.Tensor, labels: torch.Tensor,
                   share: float) -> torch.Tensor:
    """Which cells carry the most evidence for their image's own class, as a flat mask.

    `backbone_features` (B, D, H, W), `head_weight` (C, D) of the pretraining head, whose
    linear score of a cell, w_label . f(cell), is that cell's share of the class logit (a
    class activation map). Keeps the top `share` of each image's H*W cells (at least one);
    the mask is (B*H*W,) in the order of `features.permute(0, 2, 3, 1).reshape(-1, D)`.
    """
    scores = torch.einsum("bdhw,bd->bhw", backbone_features.float(), head_weight[labels].float())
    flat = scores.reshape(scores.shape[0], -1)
    keep = max(1, int(round(float(share) * flat.shape[1])))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask.scatter_(1, flat.topk(keep, dim=1).indices, True)
    return mask.reshape(-1)


def _detached(module: nn.Module) -> dict:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def save_heads(classifier: nn.Module) -> dict:
    """The heads' weights for last.pt while pretraining (keys as runs of main wrote them)."""
    assert isinstance(classifier, PretrainClassifier)
    state = {"pretrain_head": _detached(classifier.head)}
    if classifier.local_head is not None:
        state["pretrain_local_head"] = _detached(classifier.local_head)
    return state


def load_heads(classifier: nn.Module, state: dict) -> None:
    assert isinstance(classifier, PretrainClassifier)
    if state.get("pretrain_head") is not None:
        classifier.head.load_state_dict(state["pretrain_head"])
    if classifier.local_head is not None and state.get("pretrain_local_head") is not None:
        classifier.local_head.load_state_dict(state["pretrain_local_head"])


def pretrain_phase(settings: PhaseConfig, config) -> TrainPhase:
    """The pretraining phase of a run with config `config` (its train.pretrain_* options)."""
    t = config.train

    def module(net, ctx: PhaseContext) -> nn.Module:
        return PretrainClassifier(net.backbone, net.num_classes, t.pretrain_pool, t.pretrain_local).to(ctx.device)

    def optimizer_groups(classifier: nn.Module, pc: PhaseConfig) -> list[dict]:
        return [{"params": list(classifier.parameters()), "lr": float(pc.lr["backbone"]),
                 "weight_decay": float(pc.weight_decay.get("backbone", 0.0)), "name": "backbone"}]

    def on_end(classifier: nn.Module, ctx: PhaseContext) -> None:
        # keep the class head while k-means++ seeding is to score cells with it
        if t.prototype_init_evidence < 1:
            assert isinstance(classifier, PretrainClassifier)
            ctx.carry["evidence_head"] = {k: v.detach().cpu().clone() for k, v in classifier.head.state_dict().items()}

    return TrainPhase("pretrain", settings, pretrain_loss, module=module, optimizer_groups=optimizer_groups,
                      save_module=save_heads, load_module=load_heads, on_end=on_end, global_clock=False)
