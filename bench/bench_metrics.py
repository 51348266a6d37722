"""Benchmark (metrics): prototype metrics over N images vs one forward pass over them.

Target (issue 14): metrics over N images cost at most 1.5x one backbone forward pass
over the same images. The published definitions need up to three passes (cropped;
cropped + noise for stability; uncropped for purity and the box share), so the target
is checked per pass: each metric set's time / (its passes x one plain forward pass),
where the plain pass loads the same images with the same loader and runs
`model.features` (backbone + add-on). Also prints the raw ratio to a single pass.
Best of `--repeats` rounds, the sides taking turns in each round (shared machines).

    python bench/bench_metrics.py [--device cpu] [--backbone resnet18] [--image-size 128]
                                  [--classes 10] [--images-per-class 12] [--repeats 3]
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

from core.data import load_dataset  # noqa: E402
from core.data.cub import read_cub_annotations  # noqa: E402
from core.data.synthetic import make_synthetic  # noqa: E402
from core.metrics.compute import MetricSettings, ModelSource, compute_metrics  # noqa: E402
from core.architectures import build_model  # noqa: E402

SETS = {"consistency": (["consistency"], 1), "stability": (["consistency", "stability"], 2),
        "purity+box_share": (["purity", "box_share"], 1), "all four": (["consistency", "stability", "purity",
                                                                          "box_share"], 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--images-per-class", type=int, default=12)
    p.add_argument("--prototypes", type=int, default=202)
    p.add_argument("--slots", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", help="existing CUB-format root (default: generate synthetic birds)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or make_synthetic(Path(tmp) / "birds", classes=args.classes,
                                           images_per_class=args.images_per_class, size=max(args.image_size, 128))
        crop = load_dataset("cub", root, split="test", image_size=args.image_size, crop_to_bbox=True)
        full = load_dataset("cub", root, split="test", image_size=args.image_size, crop_to_bbox=False)
        ann = read_cub_annotations(root, parts=True, attributes=False)
        model = build_model({"architecture": "protopool", "backbone": args.backbone, "weights": "none",
                             "num_prototypes": args.prototypes, "num_slots": args.slots,
                             "num_classes": crop.num_classes}).to(device).eval()
        source = ModelSource(model)

        @torch.no_grad()
        def plain_pass():
            for images, _, _ in DataLoader(crop, batch_size=args.batch, shuffle=False):
                model.features(images.to(device))

        def metrics(which):
            return lambda: compute_metrics(source, crop, full, ann, MetricSettings(metrics=which), device=device,
                                           batch_size=args.batch)

        fns = {"forward": plain_pass, **{name: metrics(which) for name, (which, _) in SETS.items()}}
        for fn in fns.values():
            fn()                                  # warm-up (also fills file caches)
        best = {name: float("inf") for name in fns}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best[name] = min(best[name], time.perf_counter() - t0)

    n = len(crop)
    print(f"bench_metrics: {n} images, {args.backbone} {args.image_size}px, M={args.prototypes}, "
          f"K={args.slots}, C={crop.num_classes}, device {device}, best of {args.repeats}")
    print(f"  one forward pass (load + backbone + add-on): {best['forward']:.3f} s")
    worst = 0.0
    for name, (_, passes) in SETS.items():
        per_pass = best[name] / (passes * best["forward"])
        worst = max(worst, per_pass)
        print(f"  {name:<18} {best[name]:.3f} s = {best[name] / best['forward']:.2f}x one pass; "
              f"{passes} pass(es) -> {per_pass:.2f}x per pass (target <= 1.5)")
    print(f"  worst per-pass ratio: {worst:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
