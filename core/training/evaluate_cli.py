"""`python -m core evaluate --checkpoint FILE --data ROOT [--split test] [--assignment hard|soft]`: accuracy.

ProtoPool models are evaluated with the hard slot assignment (the paper's); `--assignment
soft` uses softmax(q) at temperature 1 instead, as the authors' code evaluates a model it
trained without --pp_gumbel (the paper's "w/o Gumbel"; `gumbel_scale=0` in its forward).
"""
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
    p.add_argument("--assignment", default="hard",
                   help="ProtoPool slot assignment at evaluation: hard (the paper's, default) or soft "
                        "(softmax(q): the authors' evaluation of a model trained without --pp_gumbel)")
    options.add_device(p)
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    options.add_quiet(p, dest="no_progress")
    return p


def set_eval_assignment(model, how: str, source: str) -> None:
    """Hard or soft slot assignment at evaluation; one error line for a bad value or a
    model without slots."""
    from core.errors import UserFacingError
    from core.model.prototype_pool import SlotAssignment

    if how not in SlotAssignment.EVAL_MODES:
        raise UserFacingError(f"--assignment: {how!r} is not an evaluation assignment; "
                              f"valid: {', '.join(SlotAssignment.EVAL_MODES)}")
    if model is None:
        return
    if how not in model.eval_assignments():
        raise UserFacingError(f"--assignment {how}: {source} is not a ProtoPool model (it has no slot assignment)")
    model.set_eval_assignment(how)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from core.device import resolve_device
    from core.training.checkpoint import check_checkpoint, load_checkpoint
    from core.training.data import checkpoint_dataset
    from core.training.evaluate import evaluate

    set_eval_assignment(None, args.assignment, str(args.checkpoint))     # a bad value before any loading
    device = resolve_device(args.device)
    # the checkpoint's header and the data set first: a bad one is refused before any weight is read
    meta = check_checkpoint(args.checkpoint)
    ds = checkpoint_dataset(meta, args.split, root=args.data, kind=args.dataset,
                            num_classes=len(meta["class_names"]), source=str(args.checkpoint))
    model, meta = load_checkpoint(args.checkpoint, map_location="cpu")
    set_eval_assignment(model, args.assignment, str(args.checkpoint))
    result = evaluate(model.to(device), ds, batch_size=args.batch_size, device=device,
                      progress=not args.no_progress)
    result.update(checkpoint=str(args.checkpoint), split=args.split, assignment=args.assignment)
    print(f"{args.split} accuracy {result['accuracy']:.4f} on {result['n']} images"
          + (" (soft slot assignment)" if args.assignment == "soft" else ""))
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2))
    return 0
