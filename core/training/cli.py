"""`python -m core train --config FILE [--ablation NAME] [--set key=value ...] [--resume] [--out DIR] [--dry-run]`."""
from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core train", description=__doc__)
    p.add_argument("--config", type=Path, help="YAML config (default: the paper's CUB setup)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, e.g. --set train.joint.epochs=3 (repeatable)")
    p.add_argument("--ablation", help="a row of the ProtoPool paper's Table 4 ('full', 'w/o L_orth', 'w/o Gumbel', "
                   "'w/o Gumbel and L_orth', 'w/o focal similarity') or ours ('w/o Gumbel noise'); "
                   "applied before --set")
    p.add_argument("--dry-run", action="store_true",
                   help="print the phase plan (steps, images seen, tau) beside the paper's and stop: no data, no training")
    p.add_argument("--out", type=Path, help="output folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from core.model.ablations import ablation_overrides
    from core.training.config import load_config

    overrides = (ablation_overrides(args.ablation) if args.ablation else []) + list(args.overrides)
    config = load_config(args.config, overrides)
    if args.dry_run:
        from core.training.plan import format_plans, phase_plan

        print(format_plans(config, phase_plan(config)))
        return 0
    from core.training.loop import Trainer

    out = args.out or Path("runs") / config.name
    trainer = Trainer(config, out, resume=args.resume, progress=False if args.no_progress else None,
                      print_plan=True)
    final = trainer.run()
    if trainer.is_main:
        val = [h.get("val_accuracy") for h in trainer.history if h.get("val_accuracy") is not None]
        print(f"saved {final}" + (f" (last val accuracy {val[-1]:.4f})" if val else ""))
    return 0
