"""Benchmark (3): training throughput (images/s), in memory and over one real epoch.

(a) joint-phase optimisation steps on random in-memory batches (pure compute);
(b) one real joint epoch of the trainer on the synthetic birds at the same image size
    (data loading, augmentation, validation excluded from the images/s figure).

CPU (default):  python bench/bench_training.py
GPU:            python bench/bench_training.py --device cuda --batch 80 --amp bf16
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.data import make_synthetic  # noqa: E402
from core.architectures import build_model  # noqa: E402
from core.model.losses import LossWeights  # noqa: E402
from core.training.config import Config, PhaseConfig  # noqa: E402
from core.training.evaluate import autocast_for  # noqa: E402
from core.training.loop import Trainer, make_optimizer, train_step  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def in_memory(args, device) -> float:
    torch.manual_seed(0)
    model = build_model(dict(architecture="protopool", backbone=args.backbone, weights="none",
                             num_classes=args.num_classes, num_prototypes=202, num_slots=10,
                             prototype_depth=256)).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    joint = Config().train.joint
    model.set_trainable(list(joint.lr))
    model.train()
    model.set_tau(0.01)
    opt = make_optimizer(model, joint, (0.9, 0.999))
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.num_classes, (args.batch,), device=device)
    for _ in range(2):
        train_step(model, model, opt, x, y, LossWeights(), autocast_for(device, args.amp))
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        train_step(model, model, opt, x, y, LossWeights(), autocast_for(device, args.amp))
    _sync(device)
    return args.steps * args.batch / (time.perf_counter() - t0)


def real_epoch(args, device) -> tuple[float, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic(Path(tmp) / "birds", classes=args.classes, images_per_class=args.images_per_class,
                              size=args.image_size, seed=0, train_fraction=0.8)
        cfg = Config()
        cfg.data.root = str(root)
        cfg.data.image_size = args.image_size
        cfg.data.batch_size = args.batch
        cfg.data.num_workers = args.workers
        cfg.data.val_fraction = 0.1
        cfg.model.backbone, cfg.model.weights = args.backbone, "none"
        cfg.train.warmup = PhaseConfig(epochs=0)
        cfg.train.joint.epochs = 1
        cfg.train.project = False
        cfg.train.last_layer = PhaseConfig(epochs=0)
        cfg.runtime.device = str(device)
        cfg.runtime.amp = args.amp if args.amp != "none" else "none"
        cfg.runtime.tensorboard = False
        trainer = Trainer(cfg, Path(tmp) / "run", progress=True)
        trainer.run()
        row = [h for h in trainer.history if h["phase"] == "joint"][0]
        n = len(trainer.train_set)
        return n / row["seconds"], n, row["seconds"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--amp", default="none", choices=["none", "bf16"])
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=3, help="timed in-memory steps")
    p.add_argument("--num-classes", type=int, default=200, help="classes of the in-memory model")
    p.add_argument("--classes", type=int, default=10, help="synthetic birds: classes")
    p.add_argument("--images-per-class", type=int, default=8, help="synthetic birds: images per class")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-epoch", action="store_true")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and args.images_per_class == 8:
        args.images_per_class, args.workers = 100, 8
    ips = in_memory(args, device)
    print(f"in-memory joint steps: {ips:8.1f} images/s  ({args.backbone} {args.image_size}px, batch {args.batch}, "
          f"amp {args.amp}, {device}, M=202 C={args.num_classes} K=10 D=256)")
    if not args.skip_epoch:
        ips_epoch, n, secs = real_epoch(args, device)
        print(f"one real epoch:        {ips_epoch:8.1f} images/s  ({n} synthetic birds in {secs:.1f} s, "
              f"{args.image_size}px, incl. loading and validation)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
