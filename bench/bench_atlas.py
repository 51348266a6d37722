"""Atlas building time vs one plain forward pass over the same images (target <= 1.3x).

Both sides load the same images with the same DataLoader settings; the forward side only
runs `model(x)`. The atlas side runs the whole build: nearest patches over the training
split, heatmaps + test accuracy over the test split (one forward each), boxes, image
copies, overlays, PNG/NPY writes, naming from the CUB attributes, pairs, validation and
the atomic rename. Synthetic birds, a randomly initialised model (speed does not depend
on the weights).

Run: .venv/bin/python bench/bench_atlas.py [--device cuda] [--backbone resnet34]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.atlas.build import AtlasOptions, build_atlas_from_model  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.data.synthetic import make_synthetic  # noqa: E402
from core.architectures import build_model  # noqa: E402
from core.model.config import ModelConfig  # noqa: E402


@torch.inference_mode()
def forward_pass(model, datasets, batch_size, workers, device) -> float:
    start = time.perf_counter()
    for ds in datasets:
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
        for images, _, _ in loader:
            model(images.to(device, non_blocking=True)).logits.float().cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet34")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--images-per-class", type=int, default=24)
    p.add_argument("--size", type=int, default=256, help="original image width of the synthetic birds")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--prototypes", type=int, default=202)
    p.add_argument("--heatmaps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic(Path(tmp) / "birds", classes=args.classes, images_per_class=args.images_per_class,
                              size=args.size, seed=0)
        cfg = ModelConfig(backbone=args.backbone, weights="none", num_prototypes=args.prototypes,
                          num_classes=args.classes)
        model = build_model(cfg).to(device).eval()
        train = load_dataset("cub", root, split="train", image_size=args.image_size)
        test = load_dataset("cub", root, split="test", image_size=args.image_size)
        n = len(train) + len(test)
        forward_pass(model, [test], args.batch_size, args.workers, device)  # warm-up (cudnn, caches)
        fwd, atl = [], []
        for r in range(args.repeats):
            fwd.append(forward_pass(model, [train, test], args.batch_size, args.workers, device))
            opts = AtlasOptions(images=args.heatmaps, batch_size=args.batch_size, workers=args.workers,
                                device=str(device), cub_root=str(root))
            start = time.perf_counter()
            build_atlas_from_model(model, {"config": {"model": cfg.to_dict()}, "class_names": train.class_names},
                                   train, test, Path(tmp) / f"atlas{r}", opts=opts)
            if device.type == "cuda":
                torch.cuda.synchronize()
            atl.append(time.perf_counter() - start)
        f, a = min(fwd), min(atl)
        print(f"device {device}, {args.backbone}, M={args.prototypes}, {n} images ({len(train)} train for nearest "
              f"patches, {len(test)} test incl. {args.heatmaps} heatmap images), {args.image_size}px, "
              f"{torch.get_num_threads()} threads")
        print(f"forward pass over the {n} images: {f:.2f} s ({1000 * f / n:.1f} ms/image)")
        print(f"atlas build over the same images:  {a:.2f} s ({1000 * a / n:.1f} ms/image)")
        print(f"ratio atlas / forward: {a / f:.2f} (target <= 1.3: {'OK' if a / f <= 1.3 else 'MISSED'})")


if __name__ == "__main__":
    main()
