"""Benchmark: how a class's slots and the binarisation of softmax(q) evolve, per loss form and
slot learning rate, on a fast proxy of the tiny config's warm-up and joint phases (issue 25).

The proxy: the shipped focal demo model's backbone (checkpoints/demo-protopool-focal.pt),
frozen, its outputs on the demo birds computed once (and cached in --cache); a fresh add-on,
prototypes (k-means++ on feature cells, as the trainer seeds them), slot logits
(Xavier-normal) and last layer from `--seeds`; then the config's warm-up (tau = 1) and
`--joint` joint epochs under its tau schedule with the real model and losses
(core.model.losses.compute_losses), Adam with the config's learning rates, batches of the
config's size. What differs from a real run: the backbone is a trained one and stays
frozen in the joint phase (the slots hardly move there once tau is small), no projection
and no last-layer phase. A run of 50 epochs takes about a minute on one core, against
about 10 for the real training, which is what lets the questions below be asked over seeds
on a shared machine. Per run it prints, after warm-up and at the end: classes holding one
prototype in two slots (`duplicate_slot_classes`), the share of slots binarised at tau = 1
(max softmax(q) > 0.9 and > 0.5), mean max softmax(q), test accuracy (hard assignment).

QUESTIONS AND EXPECTED DIRECTION (written before the runs named here; the first three seeds
of question 1 were run before this docstring, from a scratch copy of this script: seeds 0/1/2
gave 3/4/3 duplicate classes with L_orth on the Gumbel sample, 1/0/0 on softmax(q)):
1. Duplicate slots. L_orth on the Gumbel sample y = softmax(q / tau + eta)
   (`loss.orthogonality_on: assignment`, the default until now) measures the overlap of two
   noisy samples: at tau = 1 the noise spreads y whatever q is, so the term's gradient on q
   is weak and noisy, and once tau is small y is one-hot and its gradient is 0. On the noise-free
   slot distributions softmax(q) (`probabilities`, what SPEC 1 and the paper name "the slot
   distributions") the term sees the slots themselves at every tau. Expected: fewer
   duplicate-slot classes with `probabilities` on seeds 3 and 4 too (0 or 1 per seed), with
   either cluster form (the top-K form, the library default, expected the same or fewer).
2. Binarisation of the w/o Gumbel row. Expected mechanism: the w/o Gumbel row trains
   softmax(q) at temperature 1 for the whole run, so cross-entropy (which sends all slots of
   a class to the class's best prototype) sharpens softmax(q) for as long as the slot
   learning rate x steps allows; the full model trains at tau = 1 only in warm-up and joint
   epoch 0, after which its sample is one-hot and its logits stop moving. Expected: at every
   slot lr the w/o Gumbel row binarises at least as much as the full model (so no slot lr
   makes the full model binarise and w/o Gumbel not), its binarised share grows through the
   joint phase, and the paper's lr halving every 5 joint epochs (`train.joint.lr_step: 5`)
   lowers it without changing the full model.
3. (added after questions 1 and 2 ran: softmax(q) left 1 duplicate class on seeds 0/3/4.)
   The cosine of two identical distributions is at its maximum, so once two slots of a
   class sit on one prototype L_orth's gradient between them is 0 in any form: it can only
   keep slots apart while they are still soft. At slot lr 0.1 softmax(q) saturates within
   about 5 warm-up epochs. Expected: at slot lr 0.01 (with softmax(q) L_orth) no duplicate
   class on seeds 0-4, the full model still binarised (> 0.5 at tau = 1) after warm-up.
4. The add-on and prototype learning rate of the tiny config (5e-3; the paper's 1.5e-3),
   which had no measured reason. Expected: at 1.5e-3 the proxy's test accuracy is lower
   (the prototypes travel 530 x 1.5e-3 = 0.8 in warm-up, in a feature cube of side 1) on
   most of seeds 0-4; duplicate classes about the same.
5. The last-layer learning rate (tiny 5e-3; the paper's 1e-4), with `--last-layer 10` (the
   config's last-layer phase after the proxy's joint epochs, no projection). Expected: at
   1e-4 the layer travels 530 x 1e-4 = 0.05 and the accuracy stays what the joint phase
   left; at 5e-3 (travel 2.7, the paper's 15 epochs x 2,248 steps x 1e-4 = 3.4) it changes by
   a point or two, up on most seeds.
6. (Not this bench: a real run, `python -m core train --config configs/tiny-synthetic.yaml
   --set loss.orthogonality_on=probabilities`, seed 0, against the shipped focal model, which
   is the same run with `assignment`.) Expected: fewer duplicate-slot classes (0 or 1 against
   the shipped model's), test accuracy within 0.02, named share within noise. Started and
   stopped in issue 25's second session: its first pretraining epoch took 208 s at load 12
   (the run would have taken hours); not measured.

    python bench/bench_slot_dynamics.py --seeds 0 1 2 3 4 --set loss.orthogonality_on=probabilities
    python bench/bench_slot_dynamics.py --seeds 0 --joint 40 --set model.assignment=softmax train.warmup.lr.slots=0.01 train.joint.lr.slots=0.01
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

T0 = time.time()


def cached_features(data_root: Path, cache: Path | None):
    """Backbone outputs of the shipped focal demo model on the train and test splits."""
    from core.data import load_dataset
    from core.training.checkpoint import load_checkpoint
    from core.training.demo import committed_demo_model

    if cache is not None and cache.is_file():
        return torch.load(cache, weights_only=True)
    model, meta = load_checkpoint(committed_demo_model("focal"))
    d = meta["config"]["data"]
    common = dict(image_size=d["image_size"], crop_to_bbox=d["crop_to_bbox"], val_fraction=d["val_fraction"],
                  seed=d["split_seed"])
    out = []
    for split in ("train", "test"):
        ds = load_dataset("cub", data_root, split=split, augment=False, **common)
        xs, ys = [], []
        with torch.no_grad():
            for images, labels, _ in torch.utils.data.DataLoader(ds, batch_size=64, shuffle=False):
                xs.append(model.backbone.eval()(images))
                ys.append(labels)
        out.append((torch.cat(xs), torch.cat(ys)))
    if cache is not None:
        torch.save(out, cache)
    return out


def kmeanspp(cells: torch.Tensor, m: int, g: torch.Generator) -> torch.Tensor:
    chosen = [int(torch.randint(len(cells), (1,), generator=g))]
    d2 = ((cells - cells[chosen[0]]) ** 2).sum(dim=1)
    for _ in range(1, m):
        nxt = int(torch.multinomial(d2 / d2.sum(), 1, generator=g))
        chosen.append(nxt)
        d2 = torch.minimum(d2, ((cells - cells[nxt]) ** 2).sum(dim=1))
    return cells[chosen]


def run(feats, config: str, seed: int, sets: list[str], joint: int, verbose: bool = False,
        last_layer: int = 0) -> dict:
    from core.architectures import build_model
    from core.model.losses import compute_losses
    from core.model.prototype_pool import tau_schedule
    from core.training.config import load_config

    cfg = load_config(config, list(sets))
    (xtr, ytr), (xte, yte) = feats
    torch.manual_seed(seed)
    cfg.model.num_classes = int(ytr.max()) + 1
    net = build_model(cfg.model)
    net.backbone = nn.Identity()
    g = torch.Generator().manual_seed(seed + 17)
    with torch.no_grad():
        pick = torch.randperm(len(xtr), generator=g)[:256]
        cells = net.add_on(xtr[pick]).permute(0, 2, 3, 1).reshape(-1, net.prototypes.shape[1])
        net.prototypes.data.copy_(kmeanspp(cells, net.num_prototypes, g))
    t = cfg.train
    gen = torch.Generator().manual_seed(seed + 1)
    log: list[dict] = []

    def phase(name, pc, epochs):
        if name == "last_layer":   # as the trainer: the rest frozen, the slots hard (eval mode)
            net.set_trainable(["last_layer"])
            groups = [{"params": list(net.last_layer.parameters()), "lr": pc.lr["last_layer"]}]
        else:
            groups = [{"params": list(net.add_on.parameters()), "lr": pc.lr["add_on"]},
                      {"params": [net.prototypes], "lr": pc.lr["prototypes"]},
                      {"params": [net.slots.logits], "lr": pc.lr["slots"]}]
        opt = torch.optim.Adam(groups, betas=tuple(t.betas))
        sched = torch.optim.lr_scheduler.StepLR(opt, pc.lr_step, pc.lr_gamma) if pc.lr_step > 0 else None
        for e in range(epochs):
            tau = tau_schedule(e if name == "joint" else 0, t.tau.alpha, t.tau.end_epoch, t.tau.start, t.tau.end)
            if name != "last_layer":
                net.set_tau(tau)
            net.train()
            perm = torch.randperm(len(xtr), generator=gen)
            for s in range(0, len(perm), cfg.data.batch_size):
                idx = perm[s:s + cfg.data.batch_size]
                total, _ = compute_losses(net, net(xtr[idx]), ytr[idx], cfg.loss)
                opt.zero_grad()
                total.backward()
                opt.step()
            if sched is not None:
                sched.step()
            with torch.no_grad():
                p = net.slot_probabilities()
                row = dict(phase=name, epoch=e, tau=round(tau, 4), dup=net.duplicate_slot_classes(),
                           bin9=round(net.slot_binarisation(0.9), 3), bin5=round(net.slot_binarisation(0.5), 3),
                           maxq=round(float(p.amax(-1).mean()), 3), t=round(time.time() - T0))
            log.append(row)
            if verbose and (e % 5 == 0 or e == epochs - 1):
                print(json.dumps(row), flush=True)

    phase("warmup", t.warmup, t.warmup.epochs)
    phase("joint", t.joint, joint)
    net.eval()
    with torch.no_grad():
        acc = float((net(xte).logits.argmax(1) == yte).float().mean())
    before_last = acc
    if last_layer:
        phase("last_layer", t.last_layer, last_layer)
        net.eval()
        with torch.no_grad():
            acc = float((net(xte).logits.argmax(1) == yte).float().mean())
    warm = [r for r in log if r["phase"] == "warmup"][-1]
    last = log[-1]
    return dict(seed=seed, sets=list(sets), dup_warm=warm["dup"], bin9_warm=warm["bin9"], bin5_warm=warm["bin5"],
                dup=last["dup"], bin9=last["bin9"], bin5=last["bin5"], maxq=last["maxq"], test_acc=round(acc, 3),
                test_acc_before_last_layer=round(before_last, 3),
                protos=len(set(net.hard_assignment().argmax(-1).flatten().tolist())))


def main(argv=None) -> int:
    from core.demo import ensure_data
    from core.training.demo import CONFIG

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--set", nargs="*", default=[], help="config overrides of every run")
    ap.add_argument("--grid", nargs="*", default=[], help="further runs, each a ';'-separated list of overrides")
    ap.add_argument("--joint", type=int, default=3, help="joint epochs (the slots of the full model hardly move "
                                                          "after joint epoch 1; w/o Gumbel needs the whole phase)")
    ap.add_argument("--last-layer", type=int, default=0, help="last-layer epochs after the joint ones")
    ap.add_argument("--config", default=None, help="default: configs/tiny-synthetic.yaml")
    ap.add_argument("--data", default=None, help="the demo birds (default: generated in a temp folder)")
    ap.add_argument("--cache", default=None, help="file for the cached backbone outputs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-v", "--verbose", action="store_true", help="print every 5th epoch")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="bench-slotdyn-") as tmp:
        root = Path(a.data) if a.data else ensure_data(Path(tmp))
        feats = cached_features(root, Path(a.cache) if a.cache else None)
        runs = [list(a.set)] + [list(a.set) + [x for x in g.split(";") if x] for g in a.grid]
        print(f"# {len(runs)} configurations x seeds {a.seeds}; load average at start {os.getloadavg()[0]:.1f}")
        for sets in runs:
            for seed in a.seeds:
                r = run(feats, a.config or str(CONFIG), seed, [f"data.root={root}", *sets], a.joint, a.verbose, a.last_layer)
                r["sets"] = sets
                print(json.dumps(r), f"# {time.time() - T0:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
