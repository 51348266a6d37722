"""`python -m core merge-prune --checkpoint FILE --data ROOT --zeta 10 --target N --out FILE`.

ProtoPShare's data-dependent merge-pruning of a ProtoPNet checkpoint: one pass over the
training and validation images, then merge steps (zeta% of the prototypes each), each
followed by last-layer fine-tuning, until `--target` prototypes (or `--max-drop` of
validation accuracy). Writes a new checkpoint atomically, with the merge history as
`history` rows of phase "merge_prune" (FORMATS.md section 2).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import cli as options
from common.names import PAIR_SOURCES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core merge-prune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="trained (projected) ProtoPNet checkpoint")
    p.add_argument("--data", type=Path, help="data-set root (default: the checkpoint's data.root)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (may equal --checkpoint)")
    p.add_argument("--zeta", type=float, default=10.0, help="percent of the prototypes merged per step (5, 10, 15)")
    p.add_argument("--target", type=int, required=True, help="stop at this many prototypes")
    p.add_argument("--max-drop", type=float, default=None,
                   help="stop (and undo the step) when validation accuracy falls more than this fraction "
                        "below the start, e.g. 0.05")
    p.add_argument("--similarity", choices=PAIR_SOURCES, default="data_dependent")
    p.add_argument("--iterations", type=int, default=25, help="last-layer fine-tuning passes per step")
    p.add_argument("--lr", type=float, default=None, help="last-layer learning rate "
                   "(default: the checkpoint's train.last_layer.lr.last_layer, else 1e-4)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the checkpoint's data.batch_size")
    p.add_argument("--project", action="store_true",
                   help="project the pruned prototypes again (a shared prototype uses all of its classes)")
    options.add_device(p)
    options.add_seed(p, help="random seed (recorded)")
    options.add_quiet(p, dest="no_progress")
    return p


def _checked(args) -> None:
    from core.errors import UserFacingError

    if not 0 < args.zeta <= 100:
        raise UserFacingError(f"--zeta: must be a percentage in (0, 100], got {args.zeta}")
    if args.target < 1:
        raise UserFacingError(f"--target: must be at least 1, got {args.target}")
    if args.max_drop is not None and not 0 <= args.max_drop <= 1:
        raise UserFacingError(f"--max-drop: must be a fraction in [0, 1], got {args.max_drop}")
    if args.iterations < 0:
        raise UserFacingError(f"--iterations: must be >= 0, got {args.iterations}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserFacingError(f"--batch-size: must be >= 1, got {args.batch_size}")


def _updated_projection(records, kept: list[int], classes: list[list[int]]):
    """Projection records of the kept prototypes, re-indexed, with their (merged) classes."""
    if not records:
        return records
    out = []
    for new, old in enumerate(kept):
        rec = records[old] if old < len(records) else None
        out.append(None if rec is None else dict(rec, prototype=new, classes=list(classes[new])))
    return out


def _step_line(row: dict) -> str:
    val = row.get("val_accuracy")
    text = f"step {row['step']}: {row['num_prototypes']} prototypes, val acc {val:.4f}"
    if row.get("merges"):
        t = row["theorem1"]
        text += (f" ({len(row['merges'])} merges; Theorem 1 assumptions hold for {t['merges_satisfying']} merges,"
                 f" cover {t['images_covered']}/{t['images']} val images)")
    return text + (" -> undone (accuracy drop)" if row.get("reverted") else "")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _checked(args)
    import torch

    from core.errors import UserFacingError
    from core.protopshare.merge import _check_mergeable, apply_head_state, merge_prune
    from core.protopshare.similarity import collect_activations
    from core.training.checkpoint import load_checkpoint, save_checkpoint
    from core.training.data import checkpoint_dataset, data_options
    from core.device import resolve_device

    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, map_location="cpu")
    _check_mergeable(model)
    if args.target >= model.num_prototypes:   # before the pass over the data, not after
        raise UserFacingError(f"--target: must be between 1 and {model.num_prototypes - 1} "
                              f"(the model has {model.num_prototypes} prototypes), got {args.target}")
    config = meta["config"]
    data = config.get("data", {})
    train_set = checkpoint_dataset(meta, "train", root=args.data, num_classes=model.num_classes,
                                   source=str(args.checkpoint))
    if data_options(meta)["val_fraction"] <= 0:
        raise UserFacingError(f"{args.checkpoint}: data.val_fraction is 0, so there is no validation split "
                              "to measure merge steps on; train with a validation split")
    val_set = checkpoint_dataset(meta, "val", root=args.data, source=str(args.checkpoint))
    if len(val_set) == 0:
        raise UserFacingError(f"{train_set.root}: the validation split (data.val_fraction "
                              f"{data_options(meta)['val_fraction']}) is empty")
    batch = args.batch_size or int(data.get("batch_size", 80))
    lr = args.lr
    if lr is None:
        lr = float(((config.get("train", {}).get("last_layer") or {}).get("lr") or {}).get("last_layer", 1e-4))
    l1 = float((config.get("loss") or {}).get("l1", 1e-4))
    progress = not args.no_progress

    model.to(device)
    eval_batch = int(data.get("eval_batch_size", 100))
    train_cache = collect_activations(model, train_set, device=device, batch_size=eval_batch, progress=progress)
    val_cache = collect_activations(model, val_set, device=device, batch_size=eval_batch, progress=progress)
    result = merge_prune(model, train_cache, val_cache, zeta=args.zeta, target=args.target, max_drop=args.max_drop,
                         similarity=args.similarity, iterations=args.iterations, lr=lr, batch_size=batch, l1=l1,
                         seed=args.seed, device=device, on_step=lambda row: print(_step_line(row), flush=True))
    input_count = model.num_prototypes
    apply_head_state(model, result.state)
    kept = result.state.kept.tolist()
    projection = _updated_projection(meta.get("projection"), kept, model.prototype_classes())
    history = list(meta.get("history") or []) + result.steps
    final_val = next(r["val_accuracy"] for r in reversed(result.steps) if not r.get("reverted"))
    if args.project:
        from core.training.evaluate import evaluate
        from core.training.projection import project_prototypes

        projection = project_prototypes(model, train_set, batch_size=eval_batch, device=device, progress=progress)
        final_val = evaluate(model, val_set, batch_size=eval_batch, device=device, amp="none")["accuracy"]
        history.append({"phase": "merge_prune", "epoch": len(result.steps), "step": "projection",
                        "num_prototypes": model.num_prototypes, "val_accuracy": final_val})
        print(f"projection: val acc {final_val:.4f}")
    history.append({"phase": "merge_prune", "summary": True, "input_checkpoint": str(args.checkpoint),
                    "input_prototypes": input_count, "num_prototypes": model.num_prototypes,
                    "val_accuracy": final_val, "kept": kept,
                    "stopped": result.stopped, "similarity": args.similarity, "zeta": float(args.zeta),
                    "target": int(args.target), "max_drop": args.max_drop, "iterations": int(args.iterations),
                    "lr": lr, "seed": int(args.seed)})
    save_checkpoint(args.out, model.cpu(), config=config, class_names=meta["class_names"], history=history,
                    projection=projection)
    print(f"merge-prune: {input_count} -> {model.num_prototypes} prototypes ({result.stopped}); saved {args.out}")
    return 0
