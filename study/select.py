"""Stimulus selection: the pool of candidate questions for each combination.

A combination is (data set, method) for saliency / likert / consistency, and
(data set, method X vs method Y) for pairwise. Each candidate carries what the renderer
needs (`media`, a plan of files to draw) and what only the private key may hold (`key`).

- saliency / likert: heatmaps with distinct images, drawn at random (seeded); with
  `same_images: true` every method of a data set gets the same images.
- consistency: the `pool_size` most similar pairs of each source (data-dependent,
  Euclidean, or the spec's declared `sources`, compared two at a time), pairs found by
  both sources left out, and so are pairs whose patch set looks exactly like one already
  taken; question i shows pair i of the one source against pair i of the other, sides at
  random.
- pairwise: images that both methods explain, the two overlays side by side at random.
"""
from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass, field

from study.atlas_reader import Atlas
from study.errors import StudyError
from study.spec import Spec


@dataclass
class Candidate:
    combo: str                       # private label of the combination, e.g. "cub|ProtoPool"
    media: tuple                     # render plan (see build._render)
    key: dict = field(default_factory=dict)


def _heatmaps_by_image(atlas: Atlas, rng: random.Random) -> dict[int, dict]:
    """One heatmap per image (a random one when an atlas explains an image several times)."""
    by_image: dict[int, list[dict]] = {}
    for h in sorted(atlas.heatmaps, key=lambda h: h["id"]):
        by_image.setdefault(h["image_id"], []).append(h)
    return {img: rng.choice(hs) for img, hs in sorted(by_image.items())}


def _sample(ids, n, rng, where: str, spec: Spec):
    ids = sorted(ids)
    if len(ids) < n:
        raise StudyError(f"{spec.path}: field 'pool_size': {where} has only {len(ids)} usable stimuli, {n} needed")
    return rng.sample(ids, n)


def shown_files(atlas: Atlas, h: dict):
    """(picture, overlay) files a participant sees for a heatmap: the stimulus rendering
    (`stimulus`, the crop at full resolution, FORMATS §4) when the atlas has one, else the
    image and its overlay (imported or older atlases)."""
    stim = h.get("stimulus")
    if stim:
        return (atlas.file(stim["image"], f"heatmaps[{h['id']}].stimulus.image"),
                atlas.file(stim["overlay"], f"heatmaps[{h['id']}].stimulus.overlay"))
    return (atlas.file(h["image"], f"heatmaps[{h['id']}].image"),
            atlas.file(h["overlay"], f"heatmaps[{h['id']}].overlay"))


def _heatmap_candidate(spec, atlas, label, dataset, h) -> Candidate:
    image, overlay = shown_files(atlas, h)
    return Candidate(
        combo=f"{dataset}|{label}",
        media=("photo_and_map", image, overlay),
        key={"kind": spec.kind, "dataset": dataset, "method": label, "atlas": atlas.name,
             "heatmap": h["id"], "image_id": h["image_id"], "prototype": h.get("prototype")},
    )


def select_heatmaps(spec: Spec, groups: dict[str, list[tuple[str, Atlas]]], rng: random.Random) -> dict[str, list[Candidate]]:
    pools: dict[str, list[Candidate]] = {}
    for dataset, members in groups.items():
        per_method = {label: _heatmaps_by_image(atlas, rng) for label, atlas in members}
        shared = None
        if spec.same_images:
            common = set.intersection(*(set(m) for m in per_method.values()))
            shared = _sample(common, spec.pool_size, rng, f"data set {dataset!r} (images shared by all methods)", spec)
        for label, atlas in members:
            images = shared or _sample(per_method[label], spec.pool_size, rng, f"atlas {atlas.manifest}", spec)
            pools[f"{dataset}|{label}"] = [
                _heatmap_candidate(spec, atlas, label, dataset, per_method[label][img]) for img in images
            ]
    return pools


def _patch_rows(spec: Spec, atlas: Atlas, pair: dict):
    """Two rows of (image file, box): the first nearest patches of prototype a, then of b."""
    rows = []
    for end in ("a", "b"):
        proto = atlas.prototypes[pair[end]]
        row = []
        for k, n in enumerate(proto["nearest"][: spec.media.patches_per_prototype]):
            row.append((atlas.file(n["image"], f"prototypes[{pair[end]}].nearest[{k}].image"), tuple(n["box"])))
        rows.append(tuple(row))
    return tuple(rows)


def balanced_sides(n: int, rng: random.Random) -> list[bool]:
    """Counterbalanced sides for `n` questions: each source is on the left in half of them
    (± 1 when n is odd), in a random order."""
    sides = [j < n // 2 for j in range(n)]
    if n % 2:
        sides[-1] = rng.random() < 0.5
    rng.shuffle(sides)
    return sides


def _set_identity(rows) -> tuple:
    """What a participant sees of one patch set, whatever the prototype ids: its patches
    (file, box), rows in any order. Two prototypes projected onto the same patches give
    the same set; it must not be shown twice."""
    return tuple(sorted(rows))


def distinct_pairs(spec: Spec, atlas: Atlas, *lists: list[dict]) -> tuple[list[dict], ...]:
    """The lists in order, dropping any pair whose patch set looks like one already taken
    by any list (taking turns, in the order given: data-dependent first), so no set
    repeats in a pool."""
    seen: set = set()
    out: tuple[list[dict], ...] = tuple([] for _ in lists)
    queues = [list(q) for q in lists]
    while any(queues):
        for side, queue in enumerate(queues):
            while queue:
                pair = queue.pop(0)
                ident = _set_identity(_patch_rows(spec, atlas, pair))
                if ident not in seen:
                    seen.add(ident)
                    out[side].append(pair)
                    break
    return out


def select_pairs(spec: Spec, groups: dict[str, list[tuple[str, Atlas]]], rng: random.Random) -> dict[str, list[Candidate]]:
    """One pool per (data set, method) and comparison of two declared sources (spec
    `sources`, declared order). With the two default sources the combination keeps its
    name `<data set>|<method>`; with more, `<data set>|<method>|<a> vs <b>`, and each
    comparison takes its own `pool_size` pairs of each of its sources, so no patch set
    appears in two questions (a source needs `pool_size` x (sources - 1) usable pairs)."""
    pools: dict[str, list[Candidate]] = {}
    sources = tuple(spec.sources)
    comparisons = list(itertools.combinations(sources, 2))
    need = spec.pool_size * (len(sources) - 1)
    for dataset, members in groups.items():
        for label, atlas in members:
            missing = [s for s in sources if s not in atlas.pairs]
            if missing:
                raise StudyError(
                    f"{spec.path}: field 'sources': atlas {atlas.manifest} has no {missing[0]!r} pairs "
                    f"(its pair sources: {', '.join(atlas.pairs)})")
            found = Counter((p["a"], p["b"]) for s in sources for p in {(q["a"], q["b"]): q for q in
                                                                          atlas.pairs[s]}.values())
            both = {ab for ab, k in found.items() if k > 1}
            lists = [[p for p in atlas.pairs[s] if (p["a"], p["b"]) not in both] for s in sources]
            distinct = distinct_pairs(spec, atlas, *lists)
            n = min(len(d) for d in distinct)
            if n < need:
                lookalike = sum(len(x) for x in lists) - sum(len(d) for d in distinct)
                counts = ", ".join(f"{s} {len(x)}" for s, x in zip(sources, lists))
                per = "" if len(comparisons) == 1 else f" ({spec.pool_size} for each of {len(sources) - 1} comparisons)"
                raise StudyError(
                    f"{spec.path}: field 'pool_size': atlas {atlas.manifest} has {n} usable pairs per source "
                    f"({counts}, after dropping {len(both)} found by both"
                    f" and {lookalike} showing the same patches as another pair), {need} needed{per}")
            cursor = dict.fromkeys(sources, 0)
            chosen = dict(zip(sources, distinct))
            for a, b in comparisons:
                combo = f"{dataset}|{label}" if len(comparisons) == 1 else f"{dataset}|{label}|{a} vs {b}"
                la = chosen[a][cursor[a]:cursor[a] + spec.pool_size]
                lb = chosen[b][cursor[b]:cursor[b] + spec.pool_size]
                cursor[a] += spec.pool_size
                cursor[b] += spec.pool_size
                pool = []
                for j, a_left in enumerate(balanced_sides(spec.pool_size, rng)):
                    sides = [(a, la[j]), (b, lb[j])]
                    (ls, lp), (rs, rp) = sides if a_left else sides[::-1]
                    pool.append(Candidate(
                        combo=combo,
                        media=("patch_sets", _patch_rows(spec, atlas, lp), _patch_rows(spec, atlas, rp)),
                        key={"kind": spec.kind, "dataset": dataset, "method": label, "atlas": atlas.name,
                             "left_source": ls, "right_source": rs,
                             "left_pair": [lp["a"], lp["b"]], "right_pair": [rp["a"], rp["b"]]},
                    ))
                pools[combo] = pool
    return pools


def select_pairwise(spec: Spec, groups: dict[str, list[tuple[str, Atlas]]], rng: random.Random) -> dict[str, list[Candidate]]:
    pools: dict[str, list[Candidate]] = {}
    for dataset, members in groups.items():
        if len(members) < 2:
            raise StudyError(f"{spec.path}: field 'methods': pairwise needs at least two methods for data set {dataset!r}")
        per_method = {label: (atlas, _heatmaps_by_image(atlas, rng)) for label, atlas in members}
        labels = [label for label, _ in members]
        for x in range(len(labels)):
            for y in range(x + 1, len(labels)):
                (ax, hx), (ay, hy) = per_method[labels[x]], per_method[labels[y]]
                images = _sample(set(hx) & set(hy), spec.pool_size, rng,
                                 f"data set {dataset!r} (images explained by methods {x} and {y})", spec)
                combo = f"{dataset}|{labels[x]}|{labels[y]}"
                pool = []
                for img, x_left in zip(images, balanced_sides(len(images), rng)):
                    sides = [(labels[x], ax, hx[img]), (labels[y], ay, hy[img])]
                    (ll, la, lh), (rl, ra, rh) = sides if x_left else sides[::-1]
                    pool.append(Candidate(
                        combo=combo,
                        media=("two_maps", shown_files(la, lh)[1], shown_files(ra, rh)[1]),
                        key={"kind": spec.kind, "dataset": dataset, "method": "", "image_id": img,
                             "left_source": ll, "right_source": rl,
                             "left_heatmap": lh["id"], "right_heatmap": rh["id"]},
                    ))
                pools[combo] = pool
    return pools


def select(spec: Spec, groups: dict[str, list[tuple[str, Atlas]]], rng: random.Random) -> dict[str, list[Candidate]]:
    """Pools per combination, in a fixed (sorted) combination order."""
    from study.kinds import kind_of

    return dict(sorted(kind_of(spec.kind).select(spec, groups, rng).items()))
