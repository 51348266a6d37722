"""k-means++ seeding of distance-based prototypes on feature cells of training images.

`train.prototype_init: kmeans++` (default `uniform`, the paper's U[0, 1]). Uniform
prototypes sit in the middle of the sigmoid feature cube, which is where the bland cells
(plain background) are; a part of the bird drives features towards 0 or 1. The nearest
cells, which the cluster cost and the max pull towards, are then background and stay so.
D^2 sampling starts each prototype on a cell far from the others: distinct, saturated
cells, mostly on the bird.

Mostly, not always: D^2 sampling also picks background cells next to the bird's outline.
With `train.prototype_init_evidence` s < 1 only the share s of each image's cells that
the pretraining head scores highest for the image's own class (`evidence_cells`) are
candidates, so every prototype starts on class evidence.
"""
from __future__ import annotations

import numpy as np
import torch

from core.errors import CheckpointError
from core.model.base import PrototypeModel
from core.model.contract import OncePhase, PhaseContext
from core.model.pretrain_head import evidence_cells


@torch.no_grad()
def kmeans_pp_seed(net: PrototypeModel, dataset, *, seed: int, share: float = 1.0,
                   head_weight: torch.Tensor | None = None, device: torch.device | str = "cpu",
                   max_images: int = 256) -> None:
    """Set `net.prototypes` to M cells chosen by D^2 sampling from the add-on features of up
    to `max_images` training images (plain, never augmented), with generator seed + 17."""
    g = torch.Generator().manual_seed(int(seed) + 17)
    n = min(len(dataset), max_images)
    pick = torch.randperm(len(dataset), generator=g)[:n].tolist()
    was = net.training
    net.eval()
    feats = []
    for start in range(0, n, 64):
        images = torch.stack([dataset.normalize(np.ascontiguousarray(dataset.load_rgb(i).transpose(2, 0, 1)))
                              for i in pick[start:start + 64]]).to(device)
        base = net.backbone(images)
        cells = net.add_on(base).float().permute(0, 2, 3, 1).reshape(-1, net.prototypes.shape[1])
        if head_weight is not None:
            labels = torch.as_tensor([int(dataset.records[i].label) for i in pick[start:start + 64]], device=device)
            cells = cells[evidence_cells(base, head_weight, labels, share)]
        feats.append(cells)
    net.train(was)
    cells = torch.cat(feats).cpu()
    m = net.num_prototypes
    chosen = [int(torch.randint(len(cells), (1,), generator=g))]
    d2 = ((cells - cells[chosen[0]]) ** 2).sum(dim=1)
    for _ in range(1, m):
        nxt = int(torch.multinomial(d2 / d2.sum(), 1, generator=g)) if float(d2.sum()) > 0 else \
            int(torch.randint(len(cells), (1,), generator=g))
        chosen.append(nxt)
        d2 = torch.minimum(d2, ((cells - cells[nxt]) ** 2).sum(dim=1))
    net.prototypes.data.copy_(cells[chosen].to(net.prototypes.device, net.prototypes.dtype))


def seeding_phase(config) -> OncePhase:
    """k-means++ seeding as a phase, run once before the prototypes first train."""

    def run(ctx: PhaseContext) -> None:
        share = float(config.train.prototype_init_evidence)
        head = None
        if share < 1:
            stored = ctx.carry.get("evidence_head")
            if stored is None:
                raise CheckpointError(f"{ctx.out_dir / 'last.pt'}: no pretraining head to score cells for "
                                      f"train.prototype_init_evidence (written before that option?); "
                                      f"train again without --resume")
            head = stored["weight"].to(ctx.device)
        assert isinstance(ctx.net, PrototypeModel)
        # the training split as trained on; its images are read plain here (load_rgb + normalize)
        kmeans_pp_seed(ctx.net, ctx.train_set, seed=int(config.runtime.seed), share=share, head_weight=head,
                       device=ctx.device)
        ctx.carry.pop("evidence_head", None)   # seeded: last.pt no longer needs it
        return None

    return OncePhase("seed", run)
