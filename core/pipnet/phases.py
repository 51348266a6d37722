"""PIP-Net's training as declarative phases plus one pure step function.

The authors' schedule (main.py, util/args.py, pipnet/train.py), stage by stage:

| phase    | stage epochs           | trains                               | loss (lambda_A, lambda_T, lambda_C) |
|----------|------------------------|--------------------------------------|-------------------------------------|
| pretrain | 1..epochs_pretrain     | head, late backbone blocks, add-on   | (e/E_pretrain, 5, 0)                |
| finetune | 1..finetune_epochs (3) | classifier                           | (0, 0, 2)                           |
| frozen   | ..freeze_epochs (10)   | classifier, head, late, add-on       | (5, 2, 2)                           |
| joint    | ..epochs (60)          | + early backbone                     | (5, 2, 2)                           |

(finetune and frozen/joint count epochs of the second stage; finetune only runs after a
first stage.) Optimisers: AdamW; the network's groups at lr_block (head, late), 10 x
lr_block (add-on) and lr_net (early), cosine-annealed per step to lr_block/100 in the first
stage and lr_net/100 in the second; the classifier's weight and bias at lr with cosine warm
restarts (period 5 epochs when epochs <= 30, else 10; minimum 0.001) stepped at fractional
epochs. After every second-stage step the classifier is clamped (W <- max(W - 1e-3, 0),
multiplier >= 1, bias >= 0); at the start of the last second-stage epoch and of every 30th,
W <- max(W - 1e-3, 0) once more. All modules stay in train mode (BatchNorm statistics
of frozen blocks keep updating, as in the authors' code).

A trainer runs, per phase: `set_trainable(model, phase)`, then for each batch of two
views `losses = step(model, batch, phase, epoch)`, `losses["loss"].backward()`, step the
optimisers `phase.steps` names, `after_step(model, phase)`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

from core.errors import UserFacingError
from core.pipnet.losses import FINETUNE, SECOND_STAGE, LossWeights, pipnet_loss, pretrain_weights


@dataclass
class PIPNetSchedule:
    """The training values; defaults are the authors' CUB/Cars runs (used_arguments/*.txt)."""

    epochs_pretrain: int = 10
    epochs: int = 60
    freeze_epochs: int = 10
    finetune_epochs: int = 3          # hard-coded in their main.py (epochs_to_finetune)
    batch_size: int = 64
    batch_size_pretrain: int = 128
    lr: float = 0.05                  # classifier
    lr_block: float = 5e-4            # head and late blocks; add-on at add_on_lr_factor x this
    lr_net: float = 5e-4              # early backbone
    add_on_lr_factor: float = 10.0
    weight_decay: float = 0.0
    classifier_shrink: float = 1e-3   # W <- max(W - shrink, 0) after each second-stage step

    @classmethod
    def from_dict(cls, data: dict, where: str = "train") -> PIPNetSchedule:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise UserFacingError(f"{where}.{key}: unknown field; known: {', '.join(sorted(known))}")
        out = cls(**data)
        for name in ("epochs_pretrain", "epochs", "freeze_epochs", "finetune_epochs"):
            if int(getattr(out, name)) < 0:
                raise UserFacingError(f"{where}.{name}: must be >= 0, got {getattr(out, name)}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Phase:
    """One phase: which stage it belongs to, its epochs in that stage (1-based, inclusive),
    the parameter groups that train (PIPNet.GROUPS), which optimisers step, its loss."""

    name: str
    stage: str                       # "pretrain" | "classify"
    first_epoch: int
    last_epoch: int
    trains: tuple[str, ...]
    steps: tuple[str, ...]           # "net" and/or "classifier"
    clamp: bool                      # clamp the classifier after each step

    def loss_weights(self, epoch: int, epochs_in_stage: int) -> LossWeights:
        if self.name == "pretrain":
            return pretrain_weights(epoch, epochs_in_stage)
        return FINETUNE if self.name == "finetune" else SECOND_STAGE


NET_GROUPS = ("head", "late", "add_on")


def phases(schedule: PIPNetSchedule) -> list[Phase]:
    """The phases of `schedule` in order (empty ones left out)."""
    s = schedule
    out = [Phase("pretrain", "pretrain", 1, s.epochs_pretrain, NET_GROUPS, ("net",), False)]
    finetune = min(s.finetune_epochs, s.epochs) if s.epochs_pretrain > 0 else 0
    out.append(Phase("finetune", "classify", 1, finetune, ("classifier",), ("classifier",), True))
    frozen_end = max(finetune, min(s.freeze_epochs, s.epochs))
    out.append(Phase("frozen", "classify", finetune + 1, frozen_end, (*NET_GROUPS, "classifier"),
                     ("net", "classifier"), True))
    out.append(Phase("joint", "classify", frozen_end + 1, s.epochs, (*NET_GROUPS, "early", "classifier"),
                     ("net", "classifier"), True))
    return [p for p in out if p.last_epoch >= p.first_epoch]


def set_trainable(model, phase: Phase) -> None:
    """requires_grad on exactly the groups `phase.trains` (the multiplier never trains)."""
    for p in model.parameters():
        p.requires_grad_(False)
    groups = model.param_groups()
    for name in phase.trains:
        for p in groups[name]:
            p.requires_grad_(True)
    model.train()


def step(model, batch, phase: Phase, epoch: int, epochs_in_stage: int) -> dict[str, torch.Tensor]:
    """Losses of one batch: batch = (view1, view2, labels, ...) -> {"loss", "align", "tanh",
    ["classification"], "accuracy"}. Pure: no backward, no optimiser; `loss` carries the graph."""
    x1, x2, y = batch[0], batch[1], batch[2]
    out = model(torch.cat([x1, x2]))
    weights = phase.loss_weights(epoch, epochs_in_stage)
    losses = pipnet_loss(out.maps, out.presence, out.logits, y, weights,
                         model.classifier.normalization_multiplier)
    with torch.no_grad():
        if phase.stage == "classify":
            losses["accuracy"] = (out.logits.argmax(dim=1) == torch.cat([y, y])).float().mean()
        losses["prototypes_present"] = (out.presence > 0.1).sum(dim=1).float().mean()
    return losses


def after_step(model, phase: Phase, schedule: PIPNetSchedule) -> None:
    if phase.clamp:
        model.classifier.clamp_(schedule.classifier_shrink)


def at_epoch_start(model, phase: Phase, epoch: int, schedule: PIPNetSchedule) -> None:
    """Second stage: one extra W <- max(W - 1e-3, 0) at the last epoch and every 30th (authors)."""
    if phase.stage == "classify" and schedule.epochs > 1 and (epoch == schedule.epochs or epoch % 30 == 0):
        with torch.no_grad():
            w = model.classifier.weight
            w.copy_(torch.clamp(w - 1e-3, min=0.0))


def optimizers(model, schedule: PIPNetSchedule, stage: str, steps_per_epoch: int):
    """(net optimiser, classifier optimiser, net scheduler, classifier lr at fractional epoch)
    for `stage` ("pretrain" | "classify"), made fresh per stage as the authors do.

    The net scheduler steps once per net step (CosineAnnealingLR over all steps of the
    stage); call `classifier_lr(epoch - 1 + i / steps_per_epoch)` and set it on the
    classifier optimiser before each classifier step (their CosineAnnealingWarmRestarts)."""
    s = schedule
    g = model.param_groups()
    net = torch.optim.AdamW([
        {"params": g["early"], "lr": s.lr_net},
        {"params": g["late"], "lr": s.lr_block},
        {"params": g["head"], "lr": s.lr_block},
        {"params": g["add_on"], "lr": s.lr_block * s.add_on_lr_factor},
    ], lr=s.lr, weight_decay=s.weight_decay)
    classifier = torch.optim.AdamW([{"params": g["classifier"], "lr": s.lr}], lr=s.lr, weight_decay=s.weight_decay)
    if stage == "pretrain":
        total, floor = max(1, steps_per_epoch * s.epochs_pretrain), s.lr_block / 100.0
    else:
        total, floor = max(1, steps_per_epoch * s.epochs), s.lr_net / 100.0
    net_sched = torch.optim.lr_scheduler.CosineAnnealingLR(net, T_max=total, eta_min=floor)
    period = 5 if s.epochs <= 30 else 10

    def classifier_lr(fractional_epoch: float) -> float:
        t = fractional_epoch % period
        return 0.001 + (s.lr - 0.001) * (1 + math.cos(math.pi * t / period)) / 2

    return net, classifier, net_sched, classifier_lr
