"""Benchmark: the paper's interpretability claim for focal similarity, in miniature (issue 25).

ProtoPool's paper says focal similarity (max - mean of a prototype's activation map)
makes prototypes attend to salient, distinctive parts rather than spreading over the
image or the background. On the synthetic birds the painted region under every pixel is
known (core.data.synthetic.redraw_regions), so the claim can be measured. For the models
that bench/bench_ablations.py kept (`--keep DIR`: DIR/seedS/<row>.pt), full (focal) and
w/o focal similarity of the same seed are compared, paired by seed, on:

- mass in part: for each assigned prototype and each test image of its classes, the
  activation map (log similarity per cell, less its minimum, bilinearly upsampled to the
  model's input pixels); the share of its mass that lies inside the painted region under
  its peak, averaged over images whose peak lies on the bird, then over prototypes;
- peak on background: the share of those (prototype, image) maps whose peak lies on
  background;
- PIP-Net purity (mean over prototypes) and Huang et al. consistency (share of
  consistent prototypes), from core/metrics with the published constants scaled to 64 px;
- named share: assigned prototypes named under the atlas builder's naming rules.

EXPECTED DIRECTION (written before the run, from the paper's claim): focal > w/o focal
on mass in part, purity, consistency and named share; focal < w/o focal on peak on
background. The seed-paired result is printed per metric (mean difference focal - w/o
focal +- SE, wins/ties/losses of focal, two-sided sign test). Other kept rows (e.g.
"full, differentiable cluster", the shipped demo config) get their named share printed per
seed, the demo's figure.

    python bench/bench_interpretability.py --models runs/ablations --data ROOT [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

PAIR = ("full", "w-o-focal-similarity")
HIGHER = {"mass_in_part": True, "peak_on_background": False, "purity": True, "consistency": True,
          "named_share": True}


@torch.no_grad()
def mass_in_part(model, test, data_root) -> dict:
    """Mass of each prototype's upsampled map inside the painted region under its peak."""
    from core.data.synthetic import redraw_regions

    classes = model.prototype_classes()
    labels = np.array([int(r.label) for r in test.records])
    ids = [int(r.image_id) for r in test.records]
    painted = redraw_regions(data_root, ids)
    s = test.image_size
    centres = np.stack(np.meshgrid(np.arange(s) + 0.5, np.arange(s) + 0.5), axis=-1).reshape(-1, 2)   # (x, y)
    regions = np.empty((len(test), s, s), dtype=np.int64)
    for i in range(len(test)):
        pts = test.geometry(i).to_original_points(centres)
        region = painted[ids[i]]
        h, w = region.shape
        x = np.clip(pts[:, 0].astype(int), 0, w - 1)
        y = np.clip(pts[:, 1].astype(int), 0, h - 1)
        regions[i] = region[y, x].reshape(s, s)
    per_proto, on_bg, seen = [], 0, 0
    loader = torch.utils.data.DataLoader(test, batch_size=64, shuffle=False)
    shares: dict[int, list[float]] = {}
    for images, _, index in loader:
        sims = model.patch_similarities(images)                                   # (B, M, H, W)
        sims = sims - sims.flatten(2).amin(dim=2)[..., None, None]
        up = torch.nn.functional.interpolate(sims, size=(s, s), mode="bilinear", align_corners=False)
        for b, i in enumerate(index.tolist()):
            for p, cls in enumerate(classes):
                if labels[i] not in cls:
                    continue
                amap = up[b, p].numpy()
                peak = np.unravel_index(int(amap.argmax()), amap.shape)
                code = regions[i][peak]
                seen += 1
                if code == 0:
                    on_bg += 1
                    continue
                total = float(amap.sum())
                shares.setdefault(p, []).append(float(amap[regions[i] == code].sum()) / total if total > 0 else 0.0)
    per_proto = [statistics.mean(v) for v in shares.values() if v]
    return {"mass_in_part": statistics.mean(per_proto) if per_proto else float("nan"),
            "peak_on_background": on_bg / max(seen, 1)}


def figures(path: Path, data_root) -> dict:
    from core.data import load_dataset
    from core.data.cub import read_cub_annotations
    from core.metrics.compute import MetricSettings, ModelSource, compute_metrics
    from core.training.checkpoint import load_checkpoint
    from core.metrics.figures import naming

    model, meta = load_checkpoint(path)
    model.eval()
    d = meta["config"]["data"]
    common = dict(image_size=d["image_size"], val_fraction=d["val_fraction"], seed=d["split_seed"])
    test = load_dataset("cub", data_root, split="test", crop_to_bbox=d["crop_to_bbox"], **common)
    train = load_dataset("cub", data_root, split="train", crop_to_bbox=d["crop_to_bbox"], augment=False, **common)
    out = mass_in_part(model, test, data_root)
    ann = read_cub_annotations(data_root)
    crop = load_dataset("cub", data_root, split="test", crop_to_bbox=True, **common)
    full = load_dataset("cub", data_root, split="test", crop_to_bbox=False, **common)
    metrics = compute_metrics(ModelSource(model), crop, full, ann, MetricSettings(metrics=["consistency", "purity"]),
                              batch_size=64)["model"]
    out.update(purity=metrics.get("purity_mean"), consistency=metrics.get("consistency_score"))
    named = naming(model, train, ann, data_root=None)
    out.update(named_share=named["named_share"], named=named["named"], assigned=named["assigned"])
    return out


def main(argv=None) -> int:
    from scipy.stats import binomtest

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", required=True, help="the --keep folder of bench/bench_ablations.py")
    ap.add_argument("--data", required=True, help="the synthetic birds the models were trained on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", nargs="+", default=[*PAIR, "full-differentiable-cluster"],
                    help="kept models to measure (file stems; default: the pair and the shipped demo config's row)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    root = Path(a.models)
    seeds = sorted(int(p.name[4:]) for p in root.glob("seed*") if p.name[4:].isdigit())
    print(f"# models {root}, seeds {seeds}; load average {os.getloadavg()[0]:.1f}")
    results: dict[str, dict[int, dict]] = {}
    for seed in seeds:
        for path in [root / f"seed{seed}" / f"{row}.pt" for row in a.rows]:
            if not path.is_file():
                continue
            r = figures(path, a.data)
            results.setdefault(path.stem, {})[seed] = r
            print(f"{path.stem:30s} seed {seed}: mass in part {r['mass_in_part']:.3f}, peak on background "
                  f"{r['peak_on_background']:.3f}, purity {r['purity']:.3f}, consistency {r['consistency']:.3f}, "
                  f"named {r['named']}/{r['assigned']} = {r['named_share']:.2f}", flush=True)
    focal, plain = results.get(PAIR[0], {}), results.get(PAIR[1], {})
    paired = sorted(set(focal) & set(plain))
    print(f"# focal ({PAIR[0]}) - w/o focal ({PAIR[1]}), paired over seeds {paired}; expected: focal higher on "
          f"mass in part, purity, consistency, named share; lower on peak on background")
    for key, higher in HIGHER.items():
        diffs = [focal[s][key] - plain[s][key] for s in paired
                 if focal[s][key] is not None and plain[s][key] is not None]
        if not diffs:
            continue
        wins = sum((d > 0) if higher else (d < 0) for d in diffs)
        losses = sum((d < 0) if higher else (d > 0) for d in diffs)
        p = binomtest(wins, wins + losses, 0.5).pvalue if wins + losses else float("nan")
        se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
        print(f"{key:20s} focal {statistics.mean(focal[s][key] for s in paired):.3f}, w/o focal "
              f"{statistics.mean(plain[s][key] for s in paired):.3f}, difference {statistics.mean(diffs):+.3f} "
              f"+- {se:.3f}; focal as expected in {wins}, against in {losses} of {len(diffs)} seeds; sign p {p:.3f}")
    for name, by_seed in results.items():
        print(f"# named share, {name}: " + ", ".join(f"seed {s} {r['named_share']:.2f}" for s, r in by_seed.items()))
    if a.json:
        Path(a.json).write_text(json.dumps({n: {str(s): r for s, r in v.items()} for n, v in results.items()},
                                           indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
