"""ProtoPShare merge-pruning (SPEC section 2): merge similar prototypes, re-tune h only.

A merge (p -> q) removes p and adds its last-layer column onto q, and q now serves p's
classes too. If p and q respond identically to every image, every logit is unchanged
(h is linear in the activations), which is why similar pairs are merged first.

Why the loop works on a small `HeadState` and cached activations instead of the model:
merging and last-layer fine-tuning never change f or the prototype vectors, so each
kept prototype's activation on every image stays what one streaming pass measured
(`similarity.collect_activations`). Fine-tuning h on those cached activations is the
model's last-layer phase without re-running the backbone (no augmentation or mixup: the
cache holds the plain images); its loss is the trainer's cross-entropy + L1 on off-class
weights (cluster and separation do not depend on h, so they add no gradient). Steps are
cheap, a step that loses too much accuracy can be undone, and the model is edited once
at the end (`apply_head_state`, through the model's own `keep_prototypes`).

Step size: zeta is the percentage of the *current* prototype count merged per step
(zeta = 10 on 2000 prototypes merges the 200 most similar admissible pairs).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from core.errors import UserFacingError
from core.model.losses import cross_entropy, l1_off_class
from core.protopshare.bound import theorem1_diagnostic
from core.protopshare.graph import sharing_summary
from core.protopshare.similarity import (ActivationCache, data_dependent_similarity, euclidean_similarity,
                                         ranked_pairs)


@dataclass
class HeadState:
    """What merging edits: kept prototype ids (of the input model), h's columns, identities."""

    kept: torch.Tensor       # (m,) long: ids in the input model, increasing
    weight: torch.Tensor     # (C, m) float32: last-layer columns of the kept prototypes
    identity: torch.Tensor   # (m, C) float32 0/1: classes each kept prototype serves

    @property
    def num_prototypes(self) -> int:
        return int(self.kept.numel())

    def clone(self) -> HeadState:
        return HeadState(self.kept.clone(), self.weight.clone(), self.identity.clone())


def _check_mergeable(net) -> None:
    identity = getattr(net, "prototype_class_identity", None)
    weight = getattr(getattr(net, "last_layer", None), "weight", None)
    if identity is None or weight is None or tuple(weight.shape) != (net.num_classes, net.num_prototypes):
        arch = getattr(getattr(net, "config", None), "architecture", type(net).__name__)
        raise UserFacingError(
            f"merge-prune: needs a ProtoPNet checkpoint (last layer over prototypes, editable class identity), "
            f"got architecture {arch!r}; prototype pairs (core.protopshare.pairs) work for any model")


def head_state(model) -> HeadState:
    """The model's current head as a HeadState (all prototypes kept)."""
    net = getattr(model, "module", model)
    _check_mergeable(net)
    m = net.num_prototypes
    return HeadState(torch.arange(m), net.last_layer.weight.detach().float().cpu().clone(),
                     (net.prototype_class_identity.detach().float().cpu() > 0).float())


@torch.no_grad()
def apply_head_state(model, state: HeadState) -> None:
    """Edit the model in place: merged columns and identities, then keep only `state.kept`."""
    net = getattr(model, "module", model)
    _check_mergeable(net)
    kept = state.kept.to(net.prototypes.device)
    net.prototype_class_identity[kept] = state.identity.to(net.prototype_class_identity)
    net.last_layer.weight[:, kept] = state.weight.to(net.last_layer.weight)
    net.keep_prototypes(kept)


def select_merges(similarity: torch.Tensor, n_merges: int) -> list[tuple[int, int]]:
    """Up to `n_merges` (removed, kept) pairs, most similar first, over local indices.

    Chains and conflicts within one step: a prototype is removed at most once, a removed
    prototype never receives a merge, and a prototype that already received one is never
    removed in the same step (so no merge points at a removed prototype). Pairs that
    break a rule are skipped and the next most similar pair is taken. In a fresh pair
    the higher index is removed (deterministic).
    """
    if n_merges <= 0:
        return []
    a, b, _ = ranked_pairs(similarity)
    removed: set[int] = set()
    targets: set[int] = set()
    merges: list[tuple[int, int]] = []
    chunk = max(4 * n_merges, 1024)
    for start in range(0, int(a.numel()), chunk):
        for i, j in zip(a[start:start + chunk].tolist(), b[start:start + chunk].tolist()):
            if i in removed or j in removed or (i in targets and j in targets):
                continue
            drop, keep = (i, j) if j in targets else (j, i)
            removed.add(drop)
            targets.add(keep)
            merges.append((drop, keep))
            if len(merges) == n_merges:
                return merges
    return merges


def merge(state: HeadState, merges: list[tuple[int, int]]) -> HeadState:
    """Apply (removed, kept) merges given in local indices; returns a new, smaller state."""
    if not merges:
        return state.clone()
    removed = torch.tensor([r for r, _ in merges], dtype=torch.long)
    kept_into = torch.tensor([k for _, k in merges], dtype=torch.long)
    if len(set(removed.tolist()) & set(kept_into.tolist())) or len(set(removed.tolist())) != len(merges):
        raise ValueError("merge: a prototype is both removed and kept, or removed twice")
    weight = state.weight.clone()
    weight.index_add_(1, kept_into, state.weight[:, removed])
    identity = state.identity.clone()
    identity.index_add_(0, kept_into, state.identity[removed])
    identity = (identity > 0).float()
    keep = torch.ones(state.num_prototypes, dtype=torch.bool)
    keep[removed] = False
    return HeadState(state.kept[keep], weight[:, keep], identity[keep])


def logits_of(state: HeadState, activations: torch.Tensor) -> torch.Tensor:
    """Class logits h(g) from cached activations of the *input model's* prototypes (N, M)."""
    return activations[:, state.kept] @ state.weight.t()


def accuracy(state: HeadState, cache: ActivationCache) -> float:
    if cache.num_images == 0:
        return float("nan")
    pred = logits_of(state, cache.activations).argmax(dim=1)
    return float((pred == cache.labels).float().mean())


def finetune_last_layer(state: HeadState, cache: ActivationCache, *, iterations: int = 25, lr: float = 1e-4,
                        batch_size: int = 80, l1: float = 1e-4, betas=(0.9, 0.999), seed: int = 0,
                        device="cpu") -> HeadState:
    """Adam on h only for `iterations` passes over the cached training activations.

    Loss = cross-entropy + l1 * |off-class weights| (core.model.losses). Returns a new
    state (on the CPU); the order of images per pass comes from `seed`; `device` is where
    the arithmetic runs (a GPU when there is one).
    """
    device = torch.device(device)
    weight = state.weight.clone().to(device).requires_grad_(True)
    off_class = (1.0 - state.identity.t()).to(device)
    feats = cache.activations[:, state.kept].to(device)
    labels = cache.labels.to(device)
    optimizer = torch.optim.Adam([weight], lr=lr, betas=tuple(betas))
    gen = torch.Generator().manual_seed(int(seed))
    n = cache.num_images
    for _ in range(int(iterations)):
        order = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = cross_entropy(feats[idx] @ weight.t(), labels[idx]) + l1 * l1_off_class(weight, off_class)
            loss.backward()
            optimizer.step()
    return HeadState(state.kept.clone(), weight.detach().cpu(), state.identity.clone())


def prototype_similarity(kind: str, cache: ActivationCache, prototypes: torch.Tensor) -> torch.Tensor:
    """(M, M) similarity of the input model's prototypes: "data_dependent" or "euclidean"."""
    if kind == "data_dependent":
        return data_dependent_similarity(cache.max_log_sim)
    if kind == "euclidean":
        return euclidean_similarity(prototypes)
    raise UserFacingError(f"--similarity: unknown similarity {kind!r}; known: data_dependent, euclidean")


@dataclass
class MergePruneResult:
    state: HeadState                        # the accepted head (apply with apply_head_state)
    steps: list[dict] = field(default_factory=list)   # step 0 = before merging; JSON-able
    stopped: str = "target"                 # "target" | "accuracy_drop" | "no_pairs"


def merge_prune(model, train: ActivationCache, val: ActivationCache, *, zeta: float, target: int,
                max_drop: float | None = None, similarity: str = "data_dependent", iterations: int = 25,
                lr: float = 1e-4, batch_size: int = 80, l1: float = 1e-4, seed: int = 0, device="cpu",
                on_step: Callable[[dict], None] | None = None) -> MergePruneResult:
    """Merge the zeta% most similar admissible pairs, fine-tune h, repeat down to `target`.

    After every step the validation and training accuracy, prototype count, merges (ids
    of the input model), class-sharing summary and Theorem 1 diagnostic are recorded.
    Stops at `target` prototypes, when no admissible pair is left, or, with `max_drop`,
    when validation accuracy falls more than `max_drop` (a fraction) below the start;
    that step is recorded with "reverted": true and not kept.
    """
    net = getattr(model, "module", model)
    state = head_state(net)
    if not 0 < float(zeta) <= 100:
        raise UserFacingError(f"--zeta: must be a percentage in (0, 100], got {zeta}")
    if not 1 <= int(target) < state.num_prototypes:
        raise UserFacingError(f"--target: must be between 1 and {state.num_prototypes - 1} "
                              f"(the model has {state.num_prototypes} prototypes), got {target}")
    protos = net.prototypes.detach().float().cpu()
    sim = prototype_similarity(similarity, train, protos)
    eps = float(net.epsilon)
    start_acc = accuracy(state, val)
    first = {"phase": "merge_prune", "epoch": 0, "step": 0, "num_prototypes": state.num_prototypes,
             "val_accuracy": start_acc, "train_accuracy": accuracy(state, train), "merges": [],
             "similarity": similarity, "zeta": float(zeta), **sharing_summary(state.identity.t() > 0)}
    result = MergePruneResult(state, [first])
    if on_step:
        on_step(first)
    step = 0
    while state.num_prototypes > target:
        step += 1
        t0 = time.time()
        m = state.num_prototypes
        n = min(max(1, int(math.floor(zeta / 100.0 * m + 0.5))), m - int(target))
        local = select_merges(sim[state.kept][:, state.kept], n)
        if not local:
            result.stopped = "no_pairs"
            break
        merged = merge(state, local)
        diag = theorem1_diagnostic(protos[state.kept], local, state, merged, val.columns(state.kept), eps)
        tuned = finetune_last_layer(merged, train, iterations=iterations, lr=lr, batch_size=batch_size, l1=l1,
                                    seed=seed + step, device=device)
        row = {"phase": "merge_prune", "epoch": step, "step": step, "num_prototypes": tuned.num_prototypes,
               "val_accuracy": accuracy(tuned, val), "train_accuracy": accuracy(tuned, train),
               "val_accuracy_before_finetune": accuracy(merged, val),
               "merges": [[int(state.kept[r]), int(state.kept[k])] for r, k in local],
               "similarity": similarity, "zeta": float(zeta), "theorem1": diag,
               **sharing_summary(tuned.identity.t() > 0)}
        drop = max_drop is not None and row["val_accuracy"] < start_acc - float(max_drop)
        row["reverted"] = bool(drop)
        row["seconds"] = round(time.time() - t0, 3)
        result.steps.append(row)
        if on_step:
            on_step(row)
        if drop:
            result.stopped = "accuracy_drop"
            break
        state = tuned
    result.state = state
    return result
