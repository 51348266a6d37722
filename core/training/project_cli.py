"""`python -m core project --checkpoint FILE [--data ROOT] [--out FILE]`: prototype projection.

Each prototype becomes its nearest patch among training images of its assigned classes;
the records (source image, cell, box in original pixels) are stored in the checkpoint.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import cli as options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core project", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, help="data-set root (default: from the checkpoint's config)")
    p.add_argument("--out", type=Path, help="where to write the projected checkpoint (default: in place)")
    p.add_argument("--batch-size", type=int, default=64)
    options.add_device(p)
    options.add_quiet(p, dest="no_progress")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from core.device import resolve_device
    from core.training.checkpoint import load_checkpoint, save_checkpoint
    from core.training.data import checkpoint_dataset
    from core.training.projection import project_prototypes

    device = resolve_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, map_location="cpu")
    ds = checkpoint_dataset(meta, "train", root=args.data, num_classes=model.num_classes, source=str(args.checkpoint))
    model.to(device)
    records = project_prototypes(model, ds, batch_size=args.batch_size, device=device, progress=not args.no_progress)
    out = args.out or args.checkpoint
    save_checkpoint(out, model.cpu(), config=meta["config"], class_names=meta["class_names"],
                    history=meta["history"], projection=records)
    done = sum(r is not None for r in records)
    print(f"projected {done}/{len(records)} prototypes; saved {out}")
    return 0
