"""Theorem 1 of ProtoPShare as a per-step diagnostic: when does a merge provably cost little?

SPEC section 2: if merged pairs are close enough, a merge lowers the true class's logit
by at most |P_c minus P'_c| * log((1 + delta)(2 - delta)). The theorem carries over
ProtoPNet's projection theorem (the removed prototype p is "moved" onto its partner q),
and our reading of its assumptions, for an image x of class c and one delta in (0, 1), is:

- for every merge (p -> q) with p serving c (p in P_c minus P'_c):
  (a) x's closest patch to p is also its closest patch to q (same feature-map cell);
  (b) ||q - p|| <= (sqrt(1 + delta) - 1) * ||z - p||, z = x's closest patch to p;
  (c) ||z - p||^2 <= 1 - delta;
- for every other merge (p serving only other classes):
  (d) ||q - p|| <= theta * ||z - p|| - sqrt(eps), theta = min(sqrt(1+delta) - 1, 1 - 1/sqrt(2-delta)).

Each condition bounds delta from below or above, so the admissible deltas of an image
form an interval; "closeness" of a pair is the ratio ||q - p|| / ||z - p||, and delta is
the smallest admissible value ("as close as the merged pairs are"), or whichever end of
the interval gives the smaller bound (the bound is concave in delta). A merge satisfies
the assumptions when (a)-(d) hold with some delta on every validation image. We also
measure the actual drop of the true-class logit caused by the merge (before h is
re-tuned) and count images where it exceeds the bound: the theorem also assumes h with
weights 1 / 0, which a trained h only approximates, so this is evidence, not a proof.
"""
from __future__ import annotations

import math

import torch

_TINY = 1e-12


def delta_bound(removed_of_class: torch.Tensor | float, delta: torch.Tensor | float):
    """|P_c minus P'_c| * log((1 + delta)(2 - delta))."""
    d = torch.as_tensor(delta, dtype=torch.float64)
    return torch.as_tensor(removed_of_class, dtype=torch.float64) * torch.log((1 + d) * (2 - d))


def theta(delta: torch.Tensor | float) -> torch.Tensor:
    d = torch.as_tensor(delta, dtype=torch.float64)
    return torch.minimum(torch.sqrt(1 + d) - 1, 1 - 1 / torch.sqrt(2 - d))


def _intervals(gap, dist_to_patch, own, same_cell, eps):
    """Admissible delta interval [lo, hi] per (image, merge) from conditions (a)-(d)."""
    inf = torch.tensor(math.inf, dtype=torch.float64)
    zp = dist_to_patch
    ratio = torch.where(zp > 0, gap / zp.clamp_min(_TINY), inf)
    lo_own = (1 + ratio) ** 2 - 1                                  # (b)
    hi_own = 1 - zp ** 2                                           # (c)
    t = torch.where(zp > 0, (gap + math.sqrt(eps)) / zp.clamp_min(_TINY), inf)
    lo_other = (1 + t) ** 2 - 1                                    # (d), first branch of theta
    hi_other = torch.where(t < 1, 2 - 1 / (1 - t.clamp_max(1 - _TINY)) ** 2, -inf)   # second branch
    lo = torch.where(own, lo_own, lo_other).clamp_min(0.0)
    hi = torch.where(own, hi_own, hi_other).clamp_max(1.0)
    hi = torch.where(own & ~same_cell, -inf, hi)                   # (a) fails: nothing admissible
    return lo, hi


@torch.no_grad()
def theorem1_diagnostic(prototypes: torch.Tensor, merges: list[tuple[int, int]], before, after, val,
                        epsilon: float) -> dict:
    """Summary of Theorem 1 for one merge step (JSON-able).

    prototypes: (m, D) prototypes of the state before the step (local indices);
    merges: (removed, kept) local pairs; before / after: HeadState before the step and
    after merging (before fine-tuning); val: ActivationCache restricted to `before`'s
    prototypes (columns in local order).
    """
    n_images = val.num_images
    if not merges or n_images == 0:
        return {"merges": len(merges), "merges_satisfying": 0, "images": n_images, "images_covered": 0,
                "delta_mean": None, "bound_mean": None, "bound_max": None,
                "observed_max_drop": None, "observed_exceeds_bound": 0}
    removed = torch.tensor([r for r, _ in merges], dtype=torch.long)
    kept = torch.tensor([k for _, k in merges], dtype=torch.long)
    p = prototypes.to(torch.float64)
    gap = (p[removed] - p[kept]).norm(dim=1)[None, :]                     # (1, n)
    dist_to_patch = val.min_distances[:, removed].to(torch.float64).clamp_min(0).sqrt()   # (N, n)
    same_cell = val.cells[:, removed] == val.cells[:, kept]
    own = before.identity[removed][:, val.labels].t() > 0                 # (N, n): p serves x's class
    lo, hi = _intervals(gap, dist_to_patch, own, same_cell, epsilon)
    pair_ok = (lo <= hi) & (lo < 1) & (hi > 0)
    merges_ok = int(pair_ok.all(dim=0).sum())

    img_lo, img_hi = lo.amax(dim=1), hi.amin(dim=1)
    covered = pair_ok.all(dim=1) & (img_lo <= img_hi)
    lo_c = img_lo.clamp(_TINY, 1 - _TINY)
    hi_c = img_hi.clamp(_TINY, 1 - _TINY)
    removed_of_class = own.sum(dim=1).to(torch.float64)
    bound = torch.minimum(delta_bound(removed_of_class, lo_c), delta_bound(removed_of_class, hi_c))
    delta = torch.where(delta_bound(1.0, lo_c) <= delta_bound(1.0, hi_c), lo_c, hi_c)

    keep = torch.ones(before.num_prototypes, dtype=torch.bool)
    keep[removed] = False
    acts = val.activations.to(torch.float64)
    rows = torch.arange(n_images)
    logit_before = (acts @ before.weight.to(torch.float64).t())[rows, val.labels]
    logit_after = (acts[:, keep] @ after.weight.to(torch.float64).t())[rows, val.labels]
    drop = logit_before - logit_after
    exceeds = covered & (drop > bound + 1e-6)

    def stat(values, fn):
        return float(fn(values)) if values.numel() else None

    return {"merges": len(merges), "merges_satisfying": merges_ok, "images": n_images,
            "images_covered": int(covered.sum()),
            "delta_mean": stat(delta[covered], torch.mean), "bound_mean": stat(bound[covered], torch.mean),
            "bound_max": stat(bound[covered], torch.max), "observed_max_drop": stat(drop[covered], torch.max),
            "observed_exceeds_bound": int(exceeds.sum())}
