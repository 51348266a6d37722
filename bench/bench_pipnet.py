"""Feasibility of PIP-Net on the synthetic birds: both stages with core/pipnet's step functions.

    nice -n 10 python bench/bench_pipnet.py --root /tmp/birds --seeds 0 1 2

A plain loop (no trainer): per phase `set_trainable`, per batch of two views `step` ->
backward -> the optimisers the phase names -> `after_step`. Prints, per seed, the test
accuracy (authors' evaluation: presences < 0.1 ignored; and without that threshold), the
prototypes in use, the time and the load average. Target (issue 29): >= 0.85 test accuracy.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.yamlfile import load_yaml  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.pipnet.augment import TwoViewDataset, two_view_transforms  # noqa: E402
from core.pipnet.model import PIPNetConfig, build_pipnet  # noqa: E402
from core.pipnet.phases import (PIPNetSchedule, after_step, at_epoch_start, optimizers, phases,  # noqa: E402
                                set_trainable, step)


def load(path: Path, overrides: list[str]) -> dict:
    cfg = load_yaml(path.read_text(), str(path))
    for item in overrides:   # section.key=value
        key, value = item.split("=", 1)
        section, field = key.split(".", 1)
        cfg[section][field] = load_yaml(value, item)
    return cfg


@torch.no_grad()
def evaluate(model, ds, batch_size: int) -> dict:
    model.eval()
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    hit = hit_inf = n = 0
    present = 0.0
    for x, y, _ in loader:
        plain, inf = model(x), model(x, inference=True)
        hit += int((plain.logits.argmax(1) == y).sum())
        hit_inf += int((inf.logits.argmax(1) == y).sum())
        present += float((inf.presence > 0).sum(1).float().sum())
        n += len(y)
    return {"acc": hit / n, "acc_inference": hit_inf / n, "present_per_image": present / n}


def train_one(cfg: dict, root: str, seed: int, log: bool) -> dict:
    torch.manual_seed(seed)
    d, a = cfg["data"], cfg["augment"]
    common = dict(image_size=d["image_size"], crop_to_bbox=d["crop_to_bbox"], val_fraction=d["val_fraction"],
                  seed=d["split_seed"])
    train = load_dataset(d["dataset"], root, split="train", **common)
    test = load_dataset(d["dataset"], root, split="test", **common)
    model_cfg = PIPNetConfig.from_dict({**cfg["model"], "num_classes": train.num_classes})
    model = build_pipnet(model_cfg)
    sched = PIPNetSchedule.from_dict(cfg["train"])
    views = {pre: TwoViewDataset(train, *two_view_transforms(d["image_size"], a["dataset"], pretrain=pre,
                                                             max_translate=a["max_translate"]))
             for pre in (True, False)}
    gen = torch.Generator().manual_seed(seed)
    loaders = {
        "pretrain": torch.utils.data.DataLoader(views[True], batch_size=sched.batch_size_pretrain, shuffle=True,
                                                drop_last=True, generator=gen),
        "classify": torch.utils.data.DataLoader(views[False], batch_size=sched.batch_size, shuffle=True,
                                                drop_last=True, generator=gen),
    }
    opts: dict = {}
    t0, c0 = time.time(), time.process_time()
    for phase in phases(sched):
        loader = loaders[phase.stage]
        if opts.get("stage") != phase.stage:     # fresh optimisers per stage (authors)
            opts = dict(zip(("net", "classifier", "net_sched", "classifier_lr"),
                            optimizers(model, sched, phase.stage, len(loader))), stage=phase.stage)
        set_trainable(model, phase)
        epochs_in_stage = sched.epochs_pretrain if phase.stage == "pretrain" else sched.epochs
        for epoch in range(phase.first_epoch, phase.last_epoch + 1):
            at_epoch_start(model, phase, epoch, sched)
            model.train()
            totals: dict[str, float] = {}
            for i, batch in enumerate(loader):
                opts["net"].zero_grad(set_to_none=True)
                opts["classifier"].zero_grad(set_to_none=True)
                losses = step(model, batch, phase, epoch, epochs_in_stage)
                losses["loss"].backward()
                if "classifier" in phase.steps:
                    for group in opts["classifier"].param_groups:
                        group["lr"] = opts["classifier_lr"](epoch - 1 + i / len(loader))
                    opts["classifier"].step()
                if "net" in phase.steps:
                    opts["net"].step()
                    opts["net_sched"].step()
                after_step(model, phase, sched)
                for k, v in losses.items():
                    totals[k] = totals.get(k, 0.0) + float(v.detach())
            if log:
                text = " ".join(f"{k} {v / len(loader):.3f}" for k, v in totals.items())
                print(f"  seed {seed} {phase.name} epoch {epoch}: {text} ({time.time() - t0:.0f} s)", flush=True)
    seconds, cpu = time.time() - t0, time.process_time() - c0
    result = evaluate(model, test, d["eval_batch_size"])
    result.update(seconds=seconds, cpu=cpu, in_use=int(model.prototypes_in_use().sum()), prototypes=model.num_prototypes,
                  connections=int((model.class_connections() > 0).sum()))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "pipnet-tiny-synthetic.yaml"))
    ap.add_argument("--root", default="/tmp/birds", help="synthetic birds (python -m core make-synthetic)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="section.key=value (e.g. train.epochs=10)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load(Path(args.config), args.set)
    print(f"config {args.config} {' '.join(args.set)}; {args.threads} thread(s)")
    accs = []
    for seed in args.seeds:
        r = train_one(cfg, args.root, seed, not args.quiet)
        accs.append(r["acc_inference"])
        print(f"seed {seed}: test accuracy {r['acc_inference']:.3f} (authors' evaluation, presences < 0.1 ignored; "
              f"without the threshold {r['acc']:.3f}); prototypes in use {r['in_use']}/{r['prototypes']}, "
              f"class connections > 0: {r['connections']}, prototypes present per test image "
              f"{r['present_per_image']:.1f}; training {r['seconds']:.0f} s wall, {r['cpu']:.0f} s CPU; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"mean test accuracy {sum(accs) / len(accs):.3f} over seeds {args.seeds} (target >= 0.85)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
