"""`python -m core train --config FILE [--set key=value ...] [--resume] [--out DIR]`."""
from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core train", description=__doc__)
    p.add_argument("--config", type=Path, help="YAML config (default: the paper's CUB setup)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, e.g. --set train.joint.epochs=3 (repeatable)")
    p.add_argument("--out", type=Path, help="output folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from core.training.config import load_config
    from core.training.loop import Trainer

    config = load_config(args.config, args.overrides)
    out = args.out or Path("runs") / config.name
    trainer = Trainer(config, out, resume=args.resume, progress=False if args.no_progress else None)
    final = trainer.run()
    if trainer.is_main:
        val = [h.get("val_accuracy") for h in trainer.history if h.get("val_accuracy") is not None]
        print(f"saved {final}" + (f" (last val accuracy {val[-1]:.4f})" if val else ""))
    return 0
