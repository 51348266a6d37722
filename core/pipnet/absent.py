"""The authors' last step of PIP-Net training: prototypes never really present lose their classes.

After training, the authors (main.py, after `visualize_topk`) look at every relevant
prototype (largest class weight > 1e-3) over the projection set (the training images
without augmentation, forward with `inference=True`): a prototype whose presence is
never above 0.1 in any of those images "is never detected" and its class weights are set
to 0, so it no longer counts as a prototype in use. `zero_absent_prototypes` does the
same from the max presence per prototype (the top-1 of their top-10 search decides: found
iff some image scores > 0.1); the trainer runs it as PIP-Net's last phase (`absent`).
"""
from __future__ import annotations

import torch

from core.model.contract import OncePhase, PhaseContext

PRESENCE_THRESHOLD = 0.1   # authors: "never detected with similarity > 0.1 in the training set"
RELEVANT_WEIGHT = 1e-3     # authors: prototypes with max class weight <= 1e-3 are not looked at


@torch.inference_mode()
def max_presence(net, dataset, *, batch_size: int = 64, device=None, num_workers: int = 0) -> torch.Tensor:
    """(M,) each prototype's largest presence (max-pooled activation) over `dataset`."""
    device = torch.device(device or next(net.parameters()).device)
    net.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    best = torch.zeros(net.num_prototypes, device=device)
    for images, _, _ in loader:
        best = torch.maximum(best, net(images.to(device)).similarities.float().amax(dim=0))
    return best.cpu()


@torch.no_grad()
def zero_absent_prototypes(net, presence: torch.Tensor) -> list[int]:
    """Zero the class weights of the relevant prototypes whose max presence is <= 0.1;
    returns their ids (sorted)."""
    weight = net.classifier.weight
    relevant = weight.detach().amax(dim=0).cpu() > RELEVANT_WEIGHT
    absent = relevant & (presence.cpu() <= PRESENCE_THRESHOLD)
    ids = torch.nonzero(absent).flatten().tolist()
    if ids:
        weight[:, torch.as_tensor(ids, device=weight.device)] = 0.0
    return ids


def absent_phase(config) -> OncePhase:
    """The trainer's last PIP-Net phase: `zero_absent_prototypes` over the un-augmented
    training split; the zeroed ids stay in the run's carry (`absent_prototypes`)."""

    def run(ctx: PhaseContext) -> None:
        ctx.net.set_trainable([])
        presence = max_presence(ctx.net, ctx.plain_train_set, batch_size=int(config.data.eval_batch_size),
                                device=ctx.device, num_workers=int(config.data.num_workers))
        ctx.carry["absent_prototypes"] = zero_absent_prototypes(ctx.net, presence)
        return None

    return OncePhase("absent", run, logs_row=True)
