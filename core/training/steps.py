"""One optimisation step, and the optimiser and schedule of a phase."""
from __future__ import annotations

import torch

from core.errors import UserFacingError
from core.model.contract import Batch, LossFn, PhaseConfig, PrototypeArchitecture
from core.model.losses import LossWeights, compute_losses


def make_optimizer(net: PrototypeArchitecture, phase: PhaseConfig, betas) -> torch.optim.Optimizer:
    """Adam with one parameter group per trained model group (its own lr / weight decay)."""
    groups = []
    for name, params in net.parameter_groups().items():
        if name in phase.lr and params:
            groups.append({"params": params, "lr": float(phase.lr[name]),
                           "weight_decay": float(phase.weight_decay.get(name, 0.0)), "name": name})
    if not groups:
        raise UserFacingError(f"train: phase trains {sorted(phase.lr)} but the model has no such parameters")
    return torch.optim.Adam(groups, betas=tuple(betas))


def make_scheduler(optimizer, phase: PhaseConfig):
    if phase.lr_step > 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=phase.lr_step, gamma=phase.lr_gamma)
    return None


def phase_step(model, module, optimizer, batch: Batch, loss: LossFn, amp_ctx) -> tuple[torch.Tensor, dict]:
    """zero_grad, forward (under autocast), the phase's loss, backward, step.

    `model` is what is called (maybe the DDP wrapper of `module`); `module` what the loss
    sees. Returns (detached logits, detached loss terms incl. "loss")."""
    optimizer.zero_grad(set_to_none=True)
    with amp_ctx:
        out = model(batch.inputs)
    total, terms = loss(module, out, batch)
    total.backward()
    optimizer.step()
    terms["loss"] = total.detach()
    return out.logits.detach(), terms


def train_step(model, net, optimizer, images, targets, weights: LossWeights, amp_ctx) -> tuple[torch.Tensor, dict]:
    """One step of the distance-based family's loss (benches and the distributed test use it)."""
    def loss(module, out, batch):
        return compute_losses(module, out, batch.targets, weights)

    return phase_step(model, net, optimizer, Batch(images, targets, targets), loss, amp_ctx)
