"""Candidate prototype pairs for the consistency study (SPEC section 5, FORMATS section 4).

The study asks whether pairs found by the data-dependent similarity look more alike
than pairs found by Euclidean distance, so both lists come from the same model and the
same training images. Works for any prototype model (ProtoPNet, ProtoPool): it only
needs the prototypes and one pass over the data.

Choices, and why:
- only prototypes that serve at least one class are paired by default (an unused
  ProtoPool prototype explains nothing); the atlas builder passes the prototypes that
  have nearest patches as `eligible`;
- pairs of identical prototypes (similarity +inf, e.g. two prototypes projected onto the
  same patch) are left out: both would show the same patches, and JSON has no infinity;
- the two lists are disjoint (`exclude_common`), since a question comparing a pair with
  itself says nothing about the similarities; a pair found by both is kept once, in the
  list where it ranks higher (leaving it out of both could empty both lists when there
  are few prototypes).

The atlas builder calls `pairs_from_similarities`; replacing the pairs of an existing
atlas is the atlas format's job (`core.atlas.format.write_pairs`), so this package never
imports the atlas package (which imports it).
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

from common.names import PAIR_SOURCES
from core.protopshare.similarity import (ActivationCache, collect_activations, data_dependent_similarity,
                                         euclidean_similarity, ranked_pairs)

SOURCES = PAIR_SOURCES


def _eligible_mask(net, eligible: Iterable[int] | None) -> torch.Tensor:
    m = net.num_prototypes
    if eligible is None:
        mask = net.class_prototype_mask().detach().cpu().any(dim=0)
        return mask if bool(mask.any()) else torch.ones(m, dtype=torch.bool)
    mask = torch.zeros(m, dtype=torch.bool)
    ids = [int(i) for i in eligible]
    bad = [i for i in ids if not 0 <= i < m]
    if bad:
        raise ValueError(f"prototype_pairs: eligible id {bad[0]} out of range 0..{m - 1}")
    mask[ids] = True
    return mask


def _as_list(ranking) -> list[tuple[int, int, float]]:
    a, b, s = ranking
    return list(zip(a.tolist(), b.tolist(), s.tolist()))


def pairs_from_similarities(dd: torch.Tensor, euclid: torch.Tensor | None, n_pairs: int, eligible: torch.Tensor,
                            exclude_common: bool = True) -> dict:
    """The FORMATS section 4 `pairs` object from two (M, M) similarity matrices (`euclid`
    None: the model's prototypes are not points in feature space, e.g. PIP-Net's, and the
    Euclidean list stays empty).

    With `exclude_common`, the two lists are disjoint: they take turns (data_dependent
    first), each taking its most similar pair that the other has not taken, until it holds
    `n_pairs` or its ranking runs out. So a pair found by both similarities is kept once,
    by the list that reaches it first (where it ranks higher among the pairs still free;
    ties: data_dependent), and with few prototypes the eligible pairs are shared out
    evenly: each list gets at least min(n_pairs, floor(eligible pairs / 2)). Deterministic,
    as the rankings are. A list takes at most n_pairs and skips at most n_pairs (the
    other's), so only the first 2 * n_pairs of each ranking become Python objects, and
    M = 2000 (two million pairs) stays cheap.
    """
    n_pairs = max(int(n_pairs), 0)
    ranks = {}
    for s, matrix in (("data_dependent", dd), ("euclidean", euclid)):
        if matrix is None:
            ranks[s] = []
            continue
        a, b, score = ranked_pairs(matrix, eligible=eligible, finite_only=True)
        ranks[s] = _as_list((a[:2 * n_pairs], b[:2 * n_pairs], score[:2 * n_pairs]))
    if not exclude_common:
        chosen = {s: ranks[s][:n_pairs] for s in SOURCES}
    else:
        chosen = {s: [] for s in SOURCES}
        taken: set[tuple[int, int]] = set()
        position = {s: 0 for s in SOURCES}
        active = [s for s in SOURCES if n_pairs > 0]
        while active:
            for s in list(active):       # one turn each, data_dependent first
                ranking = ranks[s]
                while position[s] < len(ranking) and tuple(ranking[position[s]][:2]) in taken:
                    position[s] += 1
                if position[s] == len(ranking):
                    active.remove(s)
                    continue
                a, b, score = ranking[position[s]]
                taken.add((a, b))
                chosen[s].append((a, b, score))
                position[s] += 1
                if len(chosen[s]) == n_pairs:
                    active.remove(s)
    return {s: [{"a": int(a), "b": int(b), "score": float(score)} for a, b, score in chosen[s]] for s in SOURCES}


def prototype_pairs(model, loader, n_pairs: int = 20, device=None, *, eligible: Iterable[int] | None = None,
                    exclude_common: bool = True, cache: ActivationCache | None = None,
                    progress: bool = False) -> dict:
    """{"data_dependent": [{"a", "b", "score"}...], "euclidean": [...]}: the `n_pairs` most
    similar pairs by d_DD and by 1/||p - q||, a < b, most similar first.

    `loader`: the training images (DataLoader or Dataset yielding (image, label, ...));
    ignored when `cache` (from `collect_activations`) is given. `eligible`: prototype ids
    allowed in pairs (e.g. those with nearest patches in the atlas).
    """
    net = getattr(model, "module", model)
    if cache is None:
        cache = collect_activations(net, loader, device=device, progress=progress)
    mask = _eligible_mask(net, eligible)
    dd = data_dependent_similarity(cache.max_log_sim)
    euclid = euclidean_similarity(net.prototypes)
    return pairs_from_similarities(dd, euclid, n_pairs, mask, exclude_common)
