"""Benchmark: ProtoPShare's data-dependent similarity for all prototype pairs on CPU.

Default size is CUB's ProtoPNet: 2000 prototypes, 6000 images' activation vectors (the
images x prototypes matrix A from one streaming pass). Prints the time of the Gram-matrix
d_DD for all ~2 million pairs, the Euclidean baseline, the ranking and one merge step's
pair selection, and, measured in the same run, the per-pair direct formula on a sample
of pairs extrapolated to all pairs (the ratio is what the matrix algebra buys), plus the
largest relative difference between the two on the sample.

    python bench/bench_dd_similarity.py [--prototypes 2000] [--images 6000] [--threads 2] [--loop]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.protopshare.merge import select_merges  # noqa: E402
from core.protopshare.similarity import (dd_squared_differences, euclidean_similarity,  # noqa: E402
                                         data_dependent_similarity, ranked_pairs)


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prototypes", type=int, default=2000)
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--depth", type=int, default=256)
    ap.add_argument("--sample-pairs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loop", action="store_true", help="also time a whole merge-prune run on the cached matrix")
    ap.add_argument("--iterations", type=int, default=25, help="fine-tuning passes per step (with --loop)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    m, n = args.prototypes, args.images
    # max log-similarities lie in (0, log(1/eps) ~ 9.2]; give prototypes some shared structure
    acts = (torch.rand(n, 1, generator=gen) * 4 + torch.rand(n, m, generator=gen) * 4).float()
    protos = torch.rand(m, args.depth, generator=gen)
    n_pairs = m * (m - 1) // 2

    t_dd, sim = timed(lambda: data_dependent_similarity(acts), repeat=2)
    t_eu, _ = timed(lambda: euclidean_similarity(protos), repeat=2)
    t_rank, _ = timed(lambda: ranked_pairs(sim))
    t_sel, merges = timed(lambda: select_merges(sim, m // 10))

    a64 = acts.to(torch.float64)
    idx = torch.randint(0, m, (args.sample_pairs, 2), generator=gen)
    idx = idx[idx[:, 0] != idx[:, 1]]

    def direct():
        return [float(((a64[:, p] - a64[:, q]) ** 2).sum()) for p, q in idx.tolist()]

    t_direct, values = timed(direct)
    per_pair = t_direct / len(idx)
    sq = dd_squared_differences(acts)
    rel = max(abs(float(sq[p, q]) - v) / v for (p, q), v in zip(idx.tolist(), values))

    print(f"d_DD for {m} prototypes x {n} images ({n_pairs:,} pairs), {args.threads} CPU threads:")
    print(f"  Gram-matrix d_DD (float64), all pairs   {t_dd:8.3f} s")
    print(f"  Euclidean 1/||p-q|| ({args.depth}-d), all pairs {t_eu:8.3f} s")
    print(f"  ranking all pairs                         {t_rank:8.3f} s")
    print(f"  one merge step's pair selection ({len(merges)})   {t_sel:8.3f} s")
    print(f"  direct per-pair formula: {per_pair * 1e6:.1f} us/pair on {len(idx)} pairs -> "
          f"{per_pair * n_pairs:.1f} s for all pairs (estimated)")
    print(f"  speed-up of the Gram form: {per_pair * n_pairs / t_dd:.0f}x; max relative difference {rel:.2e}")
    if args.loop:
        loop(acts, args)


def loop(acts: torch.Tensor, args) -> None:
    """A whole merge-prune run on cached activations (CUB-like: 200 classes, 10 per class)."""
    from core.architectures import build_model
    from core.protopshare.merge import merge_prune
    from core.protopshare.similarity import ActivationCache

    m = acts.shape[1]
    classes = max(m // 10, 1)
    net = build_model(dict(architecture="protopnet", backbone="resnet18", weights="none", truncate="layer2",
                           num_classes=classes, num_prototypes=None, prototypes_per_class=m // classes,
                           prototype_depth=8, similarity="protopnet"))
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, classes, (acts.shape[0],), generator=gen)
    own = torch.nn.functional.one_hot(labels, classes).repeat_interleave(m // classes, dim=1).float()
    feats = acts + 2.0 * own
    n_val = acts.shape[0] // 10

    def cache(rows):
        k = feats[rows]
        return ActivationCache(k, k, torch.ones_like(k), torch.zeros(k.shape, dtype=torch.int32), labels[rows])

    t0 = time.perf_counter()
    result = merge_prune(net, cache(slice(n_val, None)), cache(slice(0, n_val)), zeta=10, target=m * 3 // 10,
                         iterations=args.iterations, batch_size=80)
    total = time.perf_counter() - t0
    steps = len(result.steps) - 1
    print(f"merge-prune loop {m} -> {result.state.num_prototypes} prototypes, zeta 10, {steps} steps, "
          f"{args.iterations} fine-tuning passes over {acts.shape[0] - n_val} images each: "
          f"{total:.1f} s ({total / max(steps, 1):.2f} s/step)")


if __name__ == "__main__":
    main()
