"""`python -m core metrics --checkpoint FILE --cub-root DIR (--out FILE | --atlas DIR)`.

Part consistency and stability (Huang et al., ICCV 2023), purity (PIP-Net) and the share
of activation inside the object box, per prototype and per model (docs/METRICS.md).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import cli as options
from core.metrics.output import ATLAS_FILE


def build_parser() -> argparse.ArgumentParser:
    from core.metrics.compute import METRICS, MetricSettings

    d = MetricSettings()
    p = argparse.ArgumentParser(prog="python -m core metrics", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint (python -m core train / import-checkpoint)")
    p.add_argument("--cub-root", type=Path, required=True,
                   help="CUB-format root with images, boxes and parts/part_locs.txt (the model's data set)")
    p.add_argument("--out", type=Path, help="metrics JSON to write")
    p.add_argument("--atlas", type=Path, help=f"atlas folder of the same model: write {ATLAS_FILE} into it "
                                              "and refer to it from atlas.json")
    p.add_argument("--method", help="method label stored with the metrics (default: the architecture)")
    p.add_argument("--split", default=d.split, choices=["train", "val", "trainval", "test"])
    p.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset of %(default)s")
    p.add_argument("--part-threshold", type=float, default=d.part_threshold)
    p.add_argument("--half-size", type=int, default=d.half_size, help="Huang region half-side at 224 px")
    p.add_argument("--noise-std", type=float, default=d.noise_std)
    p.add_argument("--noise-clip", type=float, default=d.noise_clip)
    p.add_argument("--purity-k", type=int, default=d.purity_k)
    p.add_argument("--purity-patch", type=int, default=d.purity_patch, help="PIP-Net patch side at 224 px")
    options.add_seed(p, d.seed, help="seed of the stability noise")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0)
    options.add_device(p)
    options.add_quiet(p)
    return p


def run(args) -> dict:
    from core.architectures import architecture
    from core.data import load_dataset
    from core.data.cub import read_cub_annotations
    from core.errors import DataError, UserFacingError
    from core.metrics.compute import MetricSettings, ModelSource, compute_metrics
    from core.metrics.output import metrics_document
    from core.training.checkpoint import load_checkpoint
    from core.training.data import data_options
    from core.device import resolve_device

    if args.out is None and args.atlas is None:
        raise UserFacingError("metrics: give --out FILE and/or --atlas DIR")
    if args.batch_size < 1:
        raise UserFacingError(f"--batch-size must be >= 1, got {args.batch_size}")
    settings = MetricSettings(split=args.split, half_size=args.half_size, part_threshold=args.part_threshold,
                              noise_std=args.noise_std, noise_clip=args.noise_clip, purity_k=args.purity_k,
                              purity_patch=args.purity_patch, seed=args.seed,
                              metrics=[m.strip() for m in args.metrics.split(",") if m.strip()])
    settings.check()
    model, meta = load_checkpoint(args.checkpoint, map_location="cpu")
    options = data_options(meta)
    options.pop("crop_to_bbox")
    crop = load_dataset("cub", args.cub_root, split=args.split, crop_to_bbox=True, **options)
    full = load_dataset("cub", args.cub_root, split=args.split, crop_to_bbox=False, **options)
    if crop.num_classes != model.num_classes:
        raise DataError(f"{args.cub_root}: has {crop.num_classes} classes but {args.checkpoint} "
                        f"was trained on {model.num_classes}")
    ann = read_cub_annotations(args.cub_root, parts=True, attributes=False)
    device = resolve_device(args.device)
    result = compute_metrics(ModelSource(model.to(device)), crop, full, ann, settings, device=device,
                             batch_size=args.batch_size, workers=args.workers, progress=not args.quiet)
    method = args.method or architecture(model.config.architecture).label
    return metrics_document(result, checkpoint=str(Path(args.checkpoint).resolve()),
                            cub_root=str(Path(args.cub_root).resolve()), method=method,
                            num_classes=model.num_classes)


def _fmt(value, pct=False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if pct else f"{value:.3f}"


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from core.metrics.output import attach_to_atlas, write_metrics

    start = time.perf_counter()
    doc = run(args)
    written = []
    if args.atlas is not None:
        written.append(attach_to_atlas(doc, args.atlas))
    if args.out is not None:
        written.append(write_metrics(doc, args.out))
    m = doc["model"]
    print(f"metrics of {m['evaluated_prototypes']}/{m['num_prototypes']} prototypes on {doc['derived']['images']} "
          f"{args.split} images: consistency {_fmt(m.get('consistency_score'), True)}, "
          f"stability {_fmt(m.get('stability_score'), True)}, purity {_fmt(m.get('purity_mean'))}, "
          f"box share {_fmt(m.get('box_share_mean'))} ({time.perf_counter() - start:.1f} s) -> "
          + ", ".join(str(p) for p in written))
    return 0
