"""`python -m core evaluate --checkpoint FILE --data ROOT [--split test]`: accuracy with hard assignment."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import cli as options
from common.atomic import write_atomic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core evaluate", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, help="data-set root (default: the one in the checkpoint's config)")
    p.add_argument("--dataset", help="cub | cars | folder (default: from the checkpoint)")
    p.add_argument("--split", default="test", choices=["train", "val", "trainval", "test"])
    p.add_argument("--batch-size", type=int, default=64)
    options.add_device(p)
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    options.add_quiet(p, dest="no_progress")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from core.device import resolve_device
    from core.training.checkpoint import check_checkpoint, load_checkpoint
    from core.training.data import checkpoint_dataset
    from core.training.evaluate import evaluate

    device = resolve_device(args.device)
    # the checkpoint's header and the data set first: a bad one is refused before any weight is read
    meta = check_checkpoint(args.checkpoint)
    ds = checkpoint_dataset(meta, args.split, root=args.data, kind=args.dataset,
                            num_classes=len(meta["class_names"]), source=str(args.checkpoint))
    model, meta = load_checkpoint(args.checkpoint, map_location="cpu")
    result = evaluate(model.to(device), ds, batch_size=args.batch_size, device=device,
                      progress=not args.no_progress)
    result.update(checkpoint=str(args.checkpoint), split=args.split)
    print(f"{args.split} accuracy {result['accuracy']:.4f} on {result['n']} images")
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2))
    return 0
