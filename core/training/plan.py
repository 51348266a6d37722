"""The phase plan of a run: optimisation steps, images seen and tau per phase, beside the paper's.

The papers count epochs over an OFFLINE-augmented training set (ProtoPNet's img_aug.py,
which ProtoPool's and ProtoPShare's READMEs use: 3 Augmentor pipelines x 10 passes = 30
augmented copies of every cropped training image; the originals are not in that folder).
This toolkit augments online, so `data.epoch_repeats` passes over the train split make
one epoch; with it the epoch-based settings (warm-up, joint, tau floor, lr steps,
patience, last layer) keep the paper's meaning in optimisation steps and images seen.

`phase_plan(config)` needs the size of the train split: counted from the data set when
it is at `data.root`, otherwise taken from the known official split sizes of the paper
setting named by `train.paper` (CUB-200-2011: 5,994 training images, Stanford Cars:
8,144) less the validation share; nothing is downloaded or trained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.architectures import ARCHITECTURES, architecture
from core.errors import UserFacingError
from core.model.contract import OncePhase, TrainPhase
from core.model.prototype_pool import tau_schedule


@dataclass(frozen=True)
class PaperSetting:
    title: str
    train_images: int          # official train split (the paper trains on all of it)
    copies: int                # offline augmented copies per image (ProtoPNet's img_aug.py: 30)
    batch_size: int
    warmup: int                # epochs
    joint: int | None          # epochs (None: until early stopping; not stated)
    patience: int | None       # epochs without improvement before stopping
    lr_step: int               # epochs between lr decays
    tau_floor: int | None      # joint epoch from which tau = 0.001 (ProtoPool)
    last_layer: int            # epochs
    push: str
    source: str


PAPERS: dict[str, PaperSetting] = {
    "protopool-cub": PaperSetting(
        "ProtoPool, CUB-200-2011", 5994, 30, 80, warmup=10, joint=None, patience=12, lr_step=5, tau_floor=30,
        last_layer=15, push="once, after joint training",
        source="paper sec. 4 and supplement; README: train_cropped_augmented by ProtoPNet's img_aug.py; "
               "--batch_size 80 --warmup_time 10 --gumbel_time 30"),
    "protopool-cars": PaperSetting(
        "ProtoPool, Stanford Cars", 8144, 30, 80, warmup=10, joint=None, patience=12, lr_step=5, tau_floor=30,
        last_layer=15, push="once, after joint training",
        source="as CUB (the README describes the augmentation for CUB only; the same img_aug.py assumed)"),
    "protopnet-cub": PaperSetting(
        "ProtoPNet (base of ProtoPShare), CUB-200-2011", 5994, 30, 80, warmup=5, joint=None, patience=None,
        lr_step=5, tau_floor=None, last_layer=20, push="every 10 epochs from epoch 10, each followed by 20 "
        "last-layer epochs (code)", source="ProtoPNet settings.py: train_batch_size 80, num_warm_epochs 5, "
        "joint_lr_step_size 5, 20 last-layer iterations; img_aug.py: 30 copies"),
}

KNOWN_TRAIN = {"cub": 5994, "cars": 8144}


def _train_size(config) -> tuple[int, str]:
    """(images in our train split, where the number comes from)."""
    from pathlib import Path

    d = config.data
    root = Path(d.root)
    if root.exists():
        from core.data import load_dataset

        try:
            n = len(load_dataset(d.dataset, d.root, split="train", image_size=d.image_size,
                                 crop_to_bbox=d.crop_to_bbox, val_fraction=d.val_fraction, seed=d.split_seed))
            return n, f"counted in {d.root}"
        except UserFacingError:
            pass
    paper = PAPERS.get(config.train.paper)
    if paper is not None and d.dataset in KNOWN_TRAIN:
        n = paper.train_images
        held = int(round(d.val_fraction * n))
        return n - held, (f"{d.root} not read: the official train split ({n:,}) less data.val_fraction "
                          f"{d.val_fraction} (about {held:,}, stratified per class)")
    raise UserFacingError(f"--dry-run: the plan needs the size of the train split: no data set at data.root "
                          f"{d.root!r} and no known split for train.paper {config.train.paper!r} "
                          f"(known: {', '.join(PAPERS)}); make the data or set train.paper")


def _steps(images: int, batch: int) -> int:
    return math.ceil(images / batch)


def phase_plan(config, train_size: int | None = None) -> dict:
    """Ours and (when `train.paper` names one) the paper's plan, as plain dicts."""
    if train_size is None:
        train_size, source = _train_size(config)
    else:
        source = "given"
    t, d = config.train, config.data
    per_epoch = int(round(float(d.epoch_repeats) * train_size))
    spe = _steps(per_epoch, d.batch_size)
    protopool = config.model.architecture == "protopool"
    tau = t.tau
    rows = []
    # the rows of the phases the architecture declares: the distance family's by their
    # settings below, any other architecture's (PIP-Net's) by name and epochs
    declared = architecture(config.model.architecture).phases(config) \
        if config.model.architecture in ARCHITECTURES else []
    own = {id(s) for s in (t.pretrain, t.warmup, t.joint, t.last_layer)}
    if any(isinstance(p, TrainPhase) and id(p.settings) not in own for p in declared):
        for p in declared:
            if isinstance(p, TrainPhase) and p.epochs:
                rows.append(dict(phase=p.name, epochs=p.epochs, steps=p.epochs * spe,
                                 images=p.epochs * per_epoch * p.views))
            elif isinstance(p, OncePhase):
                rows.append(dict(phase=p.name, epochs=1, steps=0, images=train_size))
        ours = dict(train_size=train_size, source=source, per_epoch=per_epoch, steps_per_epoch=spe, rows=rows,
                    milestones={}, batch_size=d.batch_size, epoch_repeats=float(d.epoch_repeats))
        return {"ours": ours, "paper": None}
    if t.pretrain.epochs:
        rows.append(dict(phase="pretrain", epochs=t.pretrain.epochs, steps=t.pretrain.epochs * spe,
                         images=t.pretrain.epochs * per_epoch))
    if t.warmup.epochs:
        rows.append(dict(phase="warm-up", epochs=t.warmup.epochs, steps=t.warmup.epochs * spe,
                         images=t.warmup.epochs * per_epoch,
                         tau=(tau.start, tau.start) if protopool else None))
    if t.joint.epochs:
        last = t.joint.epochs - 1
        rows.append(dict(phase="joint (at most)", epochs=t.joint.epochs, steps=t.joint.epochs * spe,
                         images=t.joint.epochs * per_epoch,
                         tau=(tau_schedule(0, tau.alpha, tau.end_epoch, tau.start, tau.end),
                              tau_schedule(last, tau.alpha, tau.end_epoch, tau.start, tau.end)) if protopool else None))
    if t.project:
        rows.append(dict(phase="projection", epochs=1, steps=0, images=train_size))
    if t.last_layer.epochs:
        rows.append(dict(phase="last layer", epochs=t.last_layer.epochs, steps=t.last_layer.epochs * spe,
                         images=t.last_layer.epochs * per_epoch))
    milestones = {}
    if t.joint.epochs and t.joint.lr_step:
        milestones["joint lr decay every"] = (t.joint.lr_step, t.joint.lr_step * spe)
    if t.joint.epochs and t.joint.patience:
        milestones["joint early-stopping patience"] = (t.joint.patience, t.joint.patience * spe)
    if protopool and t.joint.epochs:
        milestones["tau at its floor from"] = (tau.end_epoch, int(round(tau.end_epoch * spe)))
    ours = dict(train_size=train_size, source=source, per_epoch=per_epoch, steps_per_epoch=spe, rows=rows,
                milestones=milestones, batch_size=d.batch_size, epoch_repeats=float(d.epoch_repeats))
    plan = {"ours": ours, "paper": None}
    paper = PAPERS.get(t.paper)
    if paper is not None:
        p_epoch = paper.train_images * paper.copies
        p_spe = _steps(p_epoch, paper.batch_size)
        p_rows = {"warm-up": (paper.warmup, paper.warmup * p_spe, paper.warmup * p_epoch),
                  "projection": (1, 0, paper.train_images),
                  "last layer": (paper.last_layer, paper.last_layer * p_spe, paper.last_layer * p_epoch)}
        p_milestones = {"joint lr decay every": (paper.lr_step, paper.lr_step * p_spe)}
        if paper.patience:
            p_milestones["joint early-stopping patience"] = (paper.patience, paper.patience * p_spe)
        if paper.tau_floor:
            p_milestones["tau at its floor from"] = (paper.tau_floor, paper.tau_floor * p_spe)
        plan["paper"] = dict(name=t.paper, setting=paper, per_epoch=p_epoch, steps_per_epoch=p_spe, rows=p_rows,
                             milestones=p_milestones)
    return plan


def comparisons(plan: dict) -> list[tuple[str, float, float]]:
    """(what, ours, paper) for every figure both plans have: steps and images per phase,
    steps of every milestone."""
    if plan["paper"] is None:
        return []
    ours, paper = plan["ours"], plan["paper"]
    out = [("steps per epoch", ours["steps_per_epoch"], paper["steps_per_epoch"]),
           ("images per epoch", ours["per_epoch"], paper["per_epoch"])]
    for row in ours["rows"]:
        ref = paper["rows"].get(row["phase"])
        if ref is not None and row["phase"] != "projection":   # one pass; ours excludes the val share
            if row["steps"] or ref[1]:
                out.append((f"{row['phase']} steps", row["steps"], ref[1]))
            out.append((f"{row['phase']} images", row["images"], ref[2]))
    for name, (_, steps) in ours["milestones"].items():
        if name in paper["milestones"]:
            out.append((f"{name} (steps)", steps, paper["milestones"][name][1]))
    return out


def within(plan: dict, tolerance: float = 0.05) -> bool:
    return all(abs(a - b) <= tolerance * b for _, a, b in comparisons(plan) if b)


def _tau(value) -> str:
    return "-" if value is None else f"{value[0]:.3g} -> {value[1]:.3g}"


def format_plans(config, plan: dict) -> str:
    ours, paper = plan["ours"], plan["paper"]
    lines = [f"# plan of {config.name}: train split {ours['train_size']:,} images ({ours['source']}), "
             f"x {ours['epoch_repeats']:g} per epoch (data.epoch_repeats, online augmentation "
             f"{'on' if config.data.augment else 'off'}) = {ours['per_epoch']:,} images = "
             f"{ours['steps_per_epoch']:,} steps of {ours['batch_size']}",
             f"{'phase':18s} {'epochs':>6s} {'steps':>9s} {'images seen':>12s} {'tau start -> end':>18s}"]
    for row in ours["rows"]:
        lines.append(f"{row['phase']:18s} {row['epochs']:6d} {row['steps']:9,d} {row['images']:12,d} "
                     f"{_tau(row.get('tau')):>18s}")
    for name, (epochs, steps) in ours["milestones"].items():
        lines.append(f"  {name} {epochs:g} epochs = {steps:,} steps")
    if paper is None:
        lines.append("# no paper setting to compare (train.paper is empty)")
        return "\n".join(lines)
    s = paper["setting"]
    lines.append(f"# the paper's plan ({s.title}): {s.train_images:,} training images x {s.copies} offline "
                 f"augmented copies = {paper['per_epoch']:,} images = {paper['steps_per_epoch']:,} steps of "
                 f"{s.batch_size} per epoch; joint: {'until early stopping' if s.joint is None else s.joint}; "
                 f"push: {s.push} ({s.source})")
    for name, (epochs, steps, images) in paper["rows"].items():
        tau = " 1 -> 1" if name == "warm-up" and s.tau_floor else ""
        lines.append(f"{name:18s} {epochs:6d} {steps:9,d} {images:12,d} {tau:>18s}")
    for name, (epochs, steps) in paper["milestones"].items():
        lines.append(f"  {name} {epochs:g} epochs = {steps:,} steps")
    lines.append(f"{'ours / paper':40s} {'ours':>12s} {'paper':>12s} {'ratio':>6s}")
    for what, a, b in comparisons(plan):
        lines.append(f"{what:40s} {a:12,.0f} {b:12,.0f} {a / b if b else float('nan'):6.3f}")
    lines.append(f"# every figure within 5 % of the paper's: {'yes' if within(plan) else 'NO'} (projection is one "
                 f"pass over the train split, which here excludes the validation share: not compared)")
    return "\n".join(lines)
