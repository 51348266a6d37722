"""PIP-Net's phases for the trainer (core/training/loop.py), as the model contract declares them.

    pretrain_prototypes -> finetune -> frozen -> joint -> absent

| phase               | trains (lr keys)                         | loss (lambda_A, lambda_T, lambda_C) | after each step |
|---------------------|------------------------------------------|-------------------------------------|-----------------|
| pretrain_prototypes | head, late, add_on                       | ((e+1)/E, 5, 0), no labels          | -               |
| finetune            | classifier                               | (0, 0, 2)                           | clamp W         |
| frozen              | classifier, head, late, add_on           | (5, 2, 2)                           | clamp W         |
| joint               | + early                                  | (5, 2, 2)                           | clamp W         |
| absent (once)       | -                                        | -                                   | -               |

`absent` is the authors' last step (core/pipnet/absent.py): prototypes never present above
0.1 on the un-augmented training images get their class weights zeroed.

Every phase sees each image twice (`views=2`) through the authors' two-view augmentation
(core/pipnet/augment.py: one shape transform shared by both views, then a colour transform
and a small crop per view, so that a patch is the same place in both views, as the
alignment loss assumes; the contract's `view_data` hook), and no mixup. Settings are `config.train.phases[name]` (epochs, lr per group); a phase the config
does not name gets the authors' CUB values (10 / 3 / 7 / 50 epochs; classifier 0.05, the
network 5e-4, the add-on 10x). The loss terms are core/pipnet/losses.py's. Where the
trainer's optimiser differs from the authors' (Adam with step decay vs. AdamW with cosine
annealing) see docs/DEVIATIONS.md (PIP-Net rows): with the authors' weight decay 0, Adam
and AdamW are the same update; the learning rates stay constant within a phase.
"""
from __future__ import annotations

import torch

from core.errors import UserFacingError
from core.model.contract import Batch, PhaseConfig, TrainPhase
from core.pipnet.absent import absent_phase
from core.pipnet.augment import TwoViewDataset, two_view_transforms
from core.pipnet.features import NETS
from core.pipnet.losses import FINETUNE, SECOND_STAGE, LossWeights, pipnet_loss, pretrain_weights

PHASES = ("pretrain_prototypes", "finetune", "frozen", "joint")
CLASSIFY = ("finetune", "frozen", "joint")


def _defaults(name: str, add_on: bool) -> PhaseConfig:
    """The authors' CUB schedule (used_arguments/CUB_arguments.txt; their epochs 10 + 60, freeze 10)."""
    net = {"head": 5e-4, "late": 5e-4, **({"add_on": 5e-3} if add_on else {})}
    return {"pretrain_prototypes": PhaseConfig(epochs=10, lr=net),
            "finetune": PhaseConfig(epochs=3, lr={"classifier": 0.05}),
            "frozen": PhaseConfig(epochs=7, lr={"classifier": 0.05, **net}),
            "joint": PhaseConfig(epochs=50, lr={"classifier": 0.05, **net, "early": 5e-4})}[name]


def _settings(config, name: str) -> PhaseConfig:
    phases = config.train.phases
    if name not in phases:   # the config's own object from now on (so --set and tests can change it)
        phases[name] = _defaults(name, bool(config.model.num_prototypes))
    return phases[name]


class StackedViews(torch.utils.data.Dataset):
    """TwoViewDataset items (view1, view2, label, i) as the trainer's ((2, 3, H, W), label, i)."""

    def __init__(self, two_views: TwoViewDataset):
        self.two_views = two_views

    def __len__(self) -> int:
        return len(self.two_views)

    def __getitem__(self, i: int):
        v1, v2, label, index = self.two_views[i]
        return torch.stack([v1, v2]), label, index


def _view_data(pretrain: bool):
    """The authors' two views of the un-augmented split: CUB's pipeline (Cars' for data.dataset
    cars); translation up to 16 px at 224 px, scaled to data.image_size."""

    def view_data(plain_train_set, config):
        size = int(config.data.image_size)
        shared, per_view = two_view_transforms(size, "cars" if config.data.dataset == "cars" else "cub",
                                               pretrain=pretrain, max_translate=16.0 * size / 224.0)
        return StackedViews(TwoViewDataset(plain_train_set, shared, per_view))

    return view_data


def _loss(weights_of):
    def loss(net, out, batch: Batch):
        if batch.views != 2 or out.maps is None:
            raise UserFacingError("PIP-Net's losses need two views per image and the forward's maps")
        images = batch.labels.shape[0] // 2
        terms = pipnet_loss(out.maps, out.similarities, out.logits, batch.labels[:images], weights_of(batch),
                            net.classifier.normalization_multiplier)
        total = terms.pop("loss")
        with torch.no_grad():
            terms["prototypes_present"] = (out.similarities > 0.1).sum(dim=1).float().mean()
        return total, {k: v.detach() for k, v in terms.items()}

    return loss


def _pretrain_weights(batch: Batch) -> LossWeights:
    return pretrain_weights(batch.epoch + 1, batch.epochs)   # authors' epoch / epochs, epochs from 1


def clamp_classifier(net) -> None:
    """After every second-stage step: W <- max(W - 1e-3, 0), multiplier >= 1, bias >= 0 (authors)."""
    net.classifier.clamp_(1e-3)


def _extra_shrink(offset: int, total: int):
    """The authors' W <- max(W - 1e-3, 0) once at the start of the last second-stage epoch
    and of every 30th (second-stage epochs counted from 1 over finetune, frozen, joint)."""

    def on_epoch_start(net, epoch: int) -> dict:
        stage_epoch = offset + epoch + 1
        if total > 1 and (stage_epoch == total or stage_epoch % 30 == 0):
            with torch.no_grad():
                w = net.classifier.weight
                w.copy_(torch.clamp(w - 1e-3, min=0.0))
        return {}

    return on_epoch_start


def pipnet_phases(config) -> list:
    settings = {name: _settings(config, name) for name in PHASES}
    total = sum(int(settings[n].epochs) for n in CLASSIFY)
    phases = [TrainPhase("pretrain_prototypes", settings["pretrain_prototypes"], _loss(_pretrain_weights), views=2,
                         view_data=_view_data(True), mixup=False, validate=False)]
    offset = 0
    for name in CLASSIFY:
        weights = FINETUNE if name == "finetune" else SECOND_STAGE
        phases.append(TrainPhase(name, settings[name], _loss(lambda batch, w=weights: w), views=2,
                                 view_data=_view_data(False), mixup=False,
                                 after_step=clamp_classifier, on_epoch_start=_extra_shrink(offset, total)))
        offset += int(settings[name].epochs)
    if total > 0:   # the authors' last step: never-present prototypes lose their class weights
        phases.append(absent_phase(config))
    return phases


def check_pipnet(config, source: str) -> None:
    m = config.model
    if m.backbone not in NETS:
        raise UserFacingError(f"{source}: model.backbone: {m.backbone!r} is not a PIP-Net backbone; known: "
                              f"{', '.join(NETS)}")
    for name in PHASES:
        p = config.train.phases.get(name)
        if p is not None and p.epochs and not p.lr:
            raise UserFacingError(f"{source}: train.phases.{name}.lr names no parameter group to train")
