"""Benchmark (1): prototype layer + losses vs the backbone, forward+backward.

At the CUB configuration (ResNet-50, 224x224, batch 16, M=202, C=200, K=10, D=256) the
prototype pool, slot assignment, last layer and all losses should cost at most 3% of
the backbone's forward+backward. Prints the two times and their ratio.

    python bench/bench_model.py [--device cpu] [--batch 16] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.architectures import build_model  # noqa: E402
from core.model.losses import LossWeights, compute_losses  # noqa: E402


def _timed_interleaved(fns: dict, repeats: int, device: torch.device) -> dict:
    """Best time of each function over `repeats` rounds, the functions taking turns in
    each round, so that a load change on a shared machine hits every side of a ratio."""
    def once(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for fn in fns.values():
        fn()  # warm-up
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], once(fn))
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--prototypes", type=int, default=202)
    p.add_argument("--slots", type=int, default=10)
    p.add_argument("--depth", type=int, default=256)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build_model(dict(architecture="protopool", backbone=args.backbone, weights="none",
                             num_classes=args.classes, num_prototypes=args.prototypes, num_slots=args.slots,
                             prototype_depth=args.depth)).to(device)
    model.set_trainable(["backbone", "add_on", "prototypes", "slots", "last_layer"])
    model.train()
    model.set_tau(0.5)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, args.classes, (args.batch,), device=device)
    weights = LossWeights()

    def backbone_step():
        model.zero_grad(set_to_none=True)
        model.backbone(x).float().mean().backward()

    with torch.no_grad():
        trunk = model.backbone(x)
        z0 = model.add_on(trunk)

    def head_step(with_add_on: bool):
        model.zero_grad(set_to_none=True)
        if with_add_on:
            z = model.add_on(trunk.detach().requires_grad_(True))
        else:
            z = z0.detach().requires_grad_(True)
        _, min_d, sim = model.prototype_layer(z)
        logits, y = model.class_scores(sim)
        from core.model.base import ModelOutput
        total, _ = compute_losses(model, ModelOutput(logits, min_d, sim, y), labels, weights)
        total.backward()

    best = _timed_interleaved({"backbone": backbone_step, "head": lambda: head_step(False),
                               "head_add": lambda: head_step(True)}, args.repeats, device)
    t_backbone, t_head, t_head_add = best["backbone"], best["head"], best["head_add"]
    print(f"config: {args.backbone} {args.image_size}px batch {args.batch} on {device}; "
          f"M={args.prototypes} C={args.classes} K={args.slots} D={args.depth}")
    print(f"backbone forward+backward:                 {t_backbone * 1000:9.1f} ms")
    print(f"prototype layer + losses forward+backward: {t_head * 1000:9.1f} ms  "
          f"= {100 * t_head / t_backbone:.2f}% of the backbone (target <= 3%)")
    print(f"  ... including the add-on 1x1 layers:     {t_head_add * 1000:9.1f} ms  "
          f"= {100 * t_head_add / t_backbone:.2f}% of the backbone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
