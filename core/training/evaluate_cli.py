"""`python -m core evaluate --checkpoint FILE --data ROOT [--split test]`: accuracy with hard assignment."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core evaluate", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, help="data-set root (default: the one in the checkpoint's config)")
    p.add_argument("--dataset", help="cub | cars | folder (default: from the checkpoint)")
    p.add_argument("--split", default="test", choices=["train", "val", "trainval", "test"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from core.data import load_dataset
    from core.errors import CheckpointError
    from core.training.checkpoint import load_checkpoint
    from core.training.distributed import resolve_device
    from core.training.evaluate import evaluate

    device = resolve_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, map_location="cpu")
    data = meta["config"].get("data", {})
    ds = load_dataset(args.dataset or data.get("dataset", "cub"), args.data or data.get("root"), split=args.split,
                      image_size=data.get("image_size", 224), crop_to_bbox=data.get("crop_to_bbox", True),
                      val_fraction=data.get("val_fraction", 0.1), seed=data.get("split_seed", 0))
    if ds.num_classes != model.num_classes:
        raise CheckpointError(f"{args.checkpoint}: has {model.num_classes} classes, {args.data} has {ds.num_classes}")
    result = evaluate(model.to(device), ds, batch_size=args.batch_size, device=device,
                      progress=not args.no_progress)
    result.update(checkpoint=str(args.checkpoint), split=args.split)
    print(f"{args.split} accuracy {result['accuracy']:.4f} on {result['n']} images")
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, args.json)
    return 0
