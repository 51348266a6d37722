"""Benchmark: ProtoPool and its three ablations on the synthetic birds (issue 16).

Variants (the paper's ablation table): full (focal similarity, Gumbel-softmax, L_orth);
without focal similarity (ProtoPNet's max activation); plain softmax instead of the
Gumbel-softmax trick; without the orthogonality loss. All four train from the demo
config (configs/tiny-synthetic.yaml) on the demo's synthetic birds with the same seed,
the same threads and the same pretrained backbone: the pretraining phase does not depend
on the variant, so it runs once per seed and each variant resumes from its last.pt (the
backbone, and the pretraining head that picks the cells the prototypes are seeded from):
exactly what four separate runs with that seed would compute.

Prints per variant and seed: test accuracy (hard assignment, held-out test split), slot
binarisation at temperature 1 (share of slots with max softmax(q) > 0.9), mean max
softmax(q), prototypes in use, seconds; then the mean per variant and whether the full
model is best or within noise of the best (noise: two binomial standard errors of the
test accuracy, or two standard deviations over seeds when more seeds run).

    python bench/bench_ablations.py                      # seed 0, 2 cores (2 variants at a time, 1 thread each)
    python bench/bench_ablations.py --seeds 0 1 2        # the noise over seeds

With `--jobs N` the variants train in N processes of `--threads` threads each; a run's
numbers depend on its thread count only, so `--jobs 2 --threads 1` reproduces
`--jobs 1 --threads 1` exactly.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

VARIANTS = {
    "full": [],
    "w/o focal": ["model.similarity=protopnet"],
    "softmax (w/o Gumbel)": ["model.assignment=softmax"],
    "w/o L_orth": ["loss.orthogonality=0"],
}


def pretrain_backbone(config_path, data_root, seed: int, work: Path) -> Path:
    """Run only the pretraining phase; its last.pt is where every variant resumes."""
    from core.training.config import load_config
    from core.training.loop import Trainer

    cfg = load_config(config_path, [f"data.root={data_root}", f"runtime.seed={seed}", "runtime.progress=false",
                                    "train.warmup.epochs=0", "train.joint.epochs=0", "train.project=false",
                                    "train.last_layer.epochs=0"])
    Trainer(cfg, work / f"pretrain-{seed}", progress=False).run()
    return work / f"pretrain-{seed}" / "last.pt"


def train_variant(config_path, data_root, seed: int, pretrained: Path, overrides: list[str], out: Path) -> dict:
    from core.data import load_dataset
    from core.training.config import load_config
    from core.training.evaluate import evaluate
    from core.training.loop import Trainer

    cfg = load_config(config_path, [f"data.root={data_root}", f"runtime.seed={seed}", "runtime.progress=false",
                                    *overrides])
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pretrained, out / "last.pt")
    t0 = time.perf_counter()
    trainer = Trainer(cfg, out, resume=True, progress=False)
    trainer.run()
    seconds = time.perf_counter() - t0
    d = cfg.data
    test = load_dataset("cub", data_root, split="test", image_size=d.image_size, crop_to_bbox=d.crop_to_bbox,
                        val_fraction=d.val_fraction, seed=d.split_seed)
    net = trainer.net.eval()
    acc = evaluate(net, test, batch_size=d.eval_batch_size, device="cpu", amp="none", channels_last=False,
                   num_workers=0, progress=False)["accuracy"]
    with torch.no_grad():
        probs = net.slot_probabilities()
    return {"test_accuracy": acc, "n_test": len(test), "binarised_slots": net.slot_binarisation(0.9),
            "mean_max_q": float(probs.amax(dim=-1).mean()),
            "prototypes_used": len(set(net.hard_assignment().argmax(-1).flatten().tolist())),
            "seconds": round(seconds, 1)}


def _train_in_process(args) -> dict:
    config_path, data_root, seed, pretrained, overrides, out, threads = args
    torch.set_num_threads(threads)
    return train_variant(config_path, data_root, seed, pretrained, overrides, out)


def main(argv=None) -> int:
    from core.demo import ensure_data
    from core.training.demo import CONFIG

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    ap.add_argument("--jobs", type=int, default=2, help="variants trained at the same time (processes)")
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--data", default=None, help="synthetic birds root (default: the demo's, generated in a temp folder)")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ablations-") as tmp:
        work = Path(tmp)
        data_root = Path(a.data) if a.data else ensure_data(work)
        print(f"# data {data_root}, config {a.config}, {a.jobs} processes x {a.threads} threads, seeds {a.seeds}")
        print(f"{'variant':22s} {'seed':>4s} {'test acc':>8s} {'bin@tau=1':>9s} {'mean max q':>10s} "
              f"{'protos':>6s} {'seconds':>7s}", flush=True)
        for seed in a.seeds:
            pretrained = pretrain_backbone(a.config, data_root, seed, work)
            jobs = [(a.config, data_root, seed, pretrained, overrides, work / f"{seed}-{i}", a.threads)
                    for i, overrides in enumerate(VARIANTS.values())]
            if a.jobs > 1:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(a.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                    results = list(pool.map(_train_in_process, jobs))
            else:
                results = [_train_in_process(job) for job in jobs]
            for name, r in zip(VARIANTS, results):
                r.update(variant=name, seed=seed)
                rows.append(r)
                print(f"{name:22s} {seed:4d} {r['test_accuracy']:8.3f} {r['binarised_slots']:9.3f} "
                      f"{r['mean_max_q']:10.3f} {r['prototypes_used']:6d} {r['seconds']:7.1f}", flush=True)
    means = {v: statistics.mean(r["test_accuracy"] for r in rows if r["variant"] == v) for v in VARIANTS}
    n = rows[0]["n_test"]
    if len(a.seeds) > 1:
        noise = 2 * max(statistics.stdev([r["test_accuracy"] for r in rows if r["variant"] == v]) for v in VARIANTS)
        how = "2 x the largest standard deviation over seeds"
    else:
        p = max(means.values())
        noise = 2 * math.sqrt(p * (1 - p) / n)
        how = f"2 binomial standard errors at n={n}"
    best = max(means, key=means.get)
    print("# mean test accuracy: " + ", ".join(f"{v} {m:.3f}" for v, m in means.items()))
    verdict = "best" if best == "full" else ("within noise of the best" if means[best] - means["full"] <= noise
                                               else "WORSE than the best")
    print(f"# full model: {verdict} (best: {best} {means[best]:.3f}; noise {noise:.3f} = {how}); "
          f"full >= 0.90: {means['full'] >= 0.90}")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "means": means, "noise": noise}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
