"""Benchmark (2): projection over N images vs the backbone's forward pass alone.

Projection (features, distances, masked running minimum, records) over N training
images should take at most 1.15x the time of only running the backbone forward over
the same images with the same loader. Uses the synthetic birds (generated in a
temporary folder) so data loading is identical in both measurements.

    python bench/bench_projection.py [--images-per-class 3] [--classes 10] [--image-size 224]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from core.data import load_dataset, make_synthetic  # noqa: E402
from core.architectures import build_model  # noqa: E402
from core.training.projection import project_prototypes  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--images-per-class", type=int, default=6)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--prototypes", type=int, default=202)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic(Path(tmp) / "birds", classes=args.classes, images_per_class=args.images_per_class,
                              size=args.image_size, seed=0)
        ds = load_dataset("cub", root, split="train", image_size=args.image_size, val_fraction=0.0)
        model = build_model(dict(architecture="protopool", backbone=args.backbone, weights="none",
                                 num_classes=ds.num_classes, num_prototypes=args.prototypes, num_slots=10,
                                 prototype_depth=256)).to(device).eval()

        @torch.no_grad()
        def backbone_only():
            for images, _, _ in DataLoader(ds, batch_size=args.batch, shuffle=False):
                model.backbone(images.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize()

        def projection():
            project_prototypes(model, ds, batch_size=args.batch, device=device)
            if device.type == "cuda":
                torch.cuda.synchronize()

        times = {"backbone": [], "projection": []}
        backbone_only()  # warm-up (file cache, allocator)
        for _ in range(args.repeats):
            for name, fn in (("backbone", backbone_only), ("projection", projection)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        tb, tp = min(times["backbone"]), min(times["projection"])
        print(f"{len(ds)} images, {args.backbone} {args.image_size}px, batch {args.batch}, M={args.prototypes}, "
              f"{device}")
        print(f"backbone forward only: {tb:8.2f} s")
        print(f"projection:            {tp:8.2f} s  = {tp / tb:.3f}x the backbone forward (target <= 1.15x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
