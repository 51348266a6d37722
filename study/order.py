"""Which items each questionnaire version gets, and in what order.

Balance: every version takes, per combination (data set x method), the `per_version`
items used least so far (ties broken by the seeded generator). Taking the least-used
items keeps every item's use count within one of every other's, whatever the numbers.

Order: `random` shuffles a version's items; `latin-square` keeps each combination's items
together in a block and counterbalances the order of blocks across versions with a
balanced Latin square (Williams design: each block precedes each other block equally
often when the number of blocks is even).
"""
from __future__ import annotations

import random
from collections.abc import Sequence


def assign_balanced(pool: Sequence[str], n_versions: int, per_version: int,
                    rng: random.Random) -> list[list[str]]:
    """For each version, the `per_version` least-used items of `pool` (distinct within a version)."""
    if per_version > len(pool):
        raise ValueError(f"per_version {per_version} > pool size {len(pool)}")
    uses = {item: 0 for item in pool}
    chosen: list[list[str]] = []
    for _ in range(n_versions):
        tiebreak = {item: rng.random() for item in pool}
        picked = sorted(pool, key=lambda it: (uses[it], tiebreak[it]))[:per_version]
        for item in picked:
            uses[item] += 1
        chosen.append(picked)
    return chosen


def assign_versions(pools: dict[str, Sequence[str]], n_versions: int, per_version: int, rng: random.Random,
                    stimuli: dict[str, frozenset] | None = None) -> dict[str, list[list[str]]]:
    """`assign_balanced` for every combination at once, with no stimulus twice in a version.

    `stimuli` maps an item to what it shows (e.g. digests of its pictures); a version never
    takes an item showing something another of its items already shows, so the least-used
    rule gives way only where two items look alike. Raises ValueError naming the version
    and combination when the pool cannot fill a version without a repeat.
    """
    uses = {combo: {item: 0 for item in pool} for combo, pool in pools.items()}
    chosen: dict[str, list[list[str]]] = {combo: [] for combo in pools}
    for combo, pool in pools.items():
        if per_version > len(pool):
            raise ValueError(f"per_version {per_version} > pool size {len(pool)} of {combo}")
    for version in range(n_versions):
        shown: set = set()
        for combo, pool in pools.items():
            tiebreak = {item: rng.random() for item in pool}
            picked = []
            for item in sorted(pool, key=lambda it: (uses[combo][it], tiebreak[it])):
                if len(picked) == per_version:
                    break
                seen = stimuli.get(item, frozenset()) if stimuli else frozenset()
                if seen & shown:
                    continue
                picked.append(item)
                shown |= seen
            if len(picked) < per_version:
                raise ValueError(f"version {version}: only {len(picked)} of {combo}'s items show nothing another "
                                 f"item of the version shows, {per_version} needed")
            for item in picked:
                uses[combo][item] += 1
            chosen[combo].append(picked)
    return chosen


def balanced_latin_square(n: int) -> list[list[int]]:
    """Rows of a Williams design for n conditions (n rows; 2n rows when n is odd)."""
    # standard construction: 0, 1, n-1, 2, n-2, ...
    first = [0] + [((j + 1) // 2) if j % 2 == 1 else (n - j // 2) % n for j in range(1, n)]
    rows = [[(c + r) % n for c in first] for r in range(n)]
    if n % 2 == 1:
        rows += [list(reversed(row)) for row in rows]
    return rows


def order_version(blocks: Sequence[Sequence[str]], order: str, version: int,
                  rng: random.Random) -> list[str]:
    """One version's sequence from its per-combination blocks (in combination order)."""
    blocks = [list(b) for b in blocks]
    if order == "random":
        seq = [item for block in blocks for item in block]
        rng.shuffle(seq)
        return seq
    if order == "latin-square":
        square = balanced_latin_square(len(blocks))
        row = square[version % len(square)]
        seq = []
        for b in row:
            block = blocks[b][:]
            rng.shuffle(block)
            seq.extend(block)
        return seq
    raise ValueError(f"unknown order {order!r}")


def insert_attention(seq: list[str], checks: Sequence[str], rng: random.Random) -> list[str]:
    """Spread attention items over the sequence: one at a random spot in each of len(checks)
    equal stretches, never first, so checks are not predictable yet not bunched together."""
    if not checks:
        return list(seq)
    out = list(seq)
    n = len(seq)
    k = len(checks)
    spots = []
    for i in range(k):
        lo = max(1, (i * n) // k)
        hi = max(lo, ((i + 1) * n) // k)
        spots.append(rng.randint(lo, hi))
    for offset, (spot, check) in enumerate(zip(sorted(spots), checks)):
        out.insert(spot + offset, check)
    return out
