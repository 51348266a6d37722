"""The phases of the distance-based family (ProtoPool, ProtoPNet; ProtoPShare trains as
ProtoPNet), as SPEC section 1 gives them, read from a run's config:

  [pretrain] -> [seed] -> warm-up -> joint -> [projection] -> last layer

`pretrain` (backbone only, throw-away head; 0 epochs by default) and `seed` (k-means++ on
feature cells, `train.prototype_init: kmeans++`) are this toolkit's; the others are the
paper's. ProtoPool's slot temperature tau follows the joint epochs (tau = start in warm-up
and in joint epoch 0, constant within an epoch); every epoch row logs it (None where the
model has no slots or the phase does not anneal).
"""
from __future__ import annotations

import dataclasses

from core.model.contract import Batch, OncePhase, Phase, PhaseContext, TrainPhase
from core.model.losses import compute_losses
from core.model.pretrain_head import pretrain_phase
from core.model.protopool import ProtoPool
from core.model.prototype_pool import check_assignment, tau_schedule
from core.model.push import project_prototypes
from core.model.seeding import seeding_phase


def _no_tau(net, epoch: int) -> dict:
    return {"tau": None}


def _tau_hook(config, joint: bool):
    t = config.train.tau

    def on_epoch_start(net, epoch: int) -> dict:
        assert isinstance(net, ProtoPool)
        tau = tau_schedule(epoch if joint else 0, t.alpha, t.end_epoch, t.start, t.end)
        net.set_tau(tau)
        return {"tau": tau}

    return on_epoch_start


def projection_phase(config) -> OncePhase:
    """Push: each prototype becomes its nearest training patch of its classes (core.model.push)."""

    def run(ctx: PhaseContext) -> dict:
        ctx.net.set_trainable([])
        records = project_prototypes(ctx.net, ctx.plain_train_set, batch_size=config.train.projection_batch_size,
                                     device=ctx.device, num_workers=config.data.num_workers, progress=ctx.progress)
        return {"projection": records}

    return OncePhase("projection", run, logs_row=True)


def _family(config, anneals_tau: bool) -> list[Phase]:
    t, weights = config.train, config.loss

    def loss(net, out, batch: Batch):
        return compute_losses(net, out, batch.targets, weights)

    phases: list[Phase] = []
    if t.pretrain.epochs:
        phases.append(dataclasses.replace(pretrain_phase(t.pretrain, config), on_epoch_start=_no_tau))
    if t.prototype_init == "kmeans++" and (t.warmup.epochs or t.joint.epochs):
        phases.append(seeding_phase(config))   # once, before the prototypes first train
    phases.append(TrainPhase("warmup", t.warmup, loss,
                             on_epoch_start=_tau_hook(config, False) if anneals_tau else _no_tau))
    phases.append(TrainPhase("joint", t.joint, loss, selects_best=True,
                             on_epoch_start=_tau_hook(config, True) if anneals_tau else _no_tau))
    if t.project:
        phases.append(projection_phase(config))
    phases.append(TrainPhase("last_layer", t.last_layer, loss, on_epoch_start=_no_tau))
    return phases


def protopool_phases(config) -> list[Phase]:
    return _family(config, anneals_tau=True)


def protopnet_phases(config) -> list[Phase]:
    return _family(config, anneals_tau=False)


def check_protopool(config, source: str) -> None:
    check_assignment(config.model.assignment, f"{source}: model.assignment")
