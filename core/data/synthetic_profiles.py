"""What the synthetic birds are made of: parts, attribute groups, class profiles, annotators.

Attribute names are real CUB-200-2011 names (`group::value`); only the groups and values
that the drawing can show are written. Each class has a profile (one value per drawn
group); each image draws its values from the profile with some within-class variation;
a simulated annotator then labels every image with certainties and some mistakes, as
CUB's crowd annotators did. Local parts (bill, crown, wing, tail, breast, throat,
eye, head pattern, legs) carry the class differences; the body colour comes from a
small shared set, so no class is recognisable from one global colour.
"""
from __future__ import annotations

import numpy as np

# The 15 CUB parts, in CUB's order (part id = index + 1).
PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing",
         "nape", "right eye", "right leg", "right wing", "tail", "throat"]

# Colour words of CUB and the RGB used to draw them.
COLOURS: dict[str, tuple[int, int, int]] = {  # in CUB's order of colour values
    "blue": (40, 85, 205), "brown": (122, 76, 38), "grey": (140, 140, 140), "yellow": (245, 212, 40),
    "green": (45, 150, 60), "orange": (245, 130, 25), "black": (28, 28, 30), "white": (242, 242, 236),
    "red": (205, 35, 35),
}
PART_COLOURS = list(COLOURS)
BODY_COLOURS = ["brown", "grey", "black"]           # shared between classes on purpose
SOFT_COLOURS = ["grey", "yellow", "orange", "black"]  # bill and leg colours
EYE_COLOURS = ["yellow", "black", "white", "red"]

# Groups whose value is drawn independently; value lists in CUB spelling.
DRAWN_GROUPS: dict[str, list[str]] = {
    "has_bill_shape": ["curved_(up_or_down)", "dagger", "hooked", "needle", "all-purpose", "cone"],
    "has_bill_color": SOFT_COLOURS,
    "has_crown_color": PART_COLOURS,
    "has_head_pattern": ["masked", "eyebrow", "eyering", "plain"],
    "has_eye_color": EYE_COLOURS,
    "has_throat_color": PART_COLOURS,
    "has_breast_color": PART_COLOURS,
    "has_breast_pattern": ["solid", "spotted", "striped"],
    "has_belly_color": PART_COLOURS,
    "has_back_color": BODY_COLOURS,
    "has_wing_color": PART_COLOURS,
    "has_wing_pattern": ["solid", "spotted", "striped"],
    "has_wing_shape": ["rounded-wings", "pointed-wings"],
    "has_tail_shape": ["forked_tail", "rounded_tail", "notched_tail", "pointed_tail", "squared_tail"],
    "has_tail_pattern": ["solid", "spotted", "striped"],
    "has_upper_tail_color": PART_COLOURS,
    "has_leg_color": SOFT_COLOURS,
}
# Groups that follow a drawn one (the same paint covers both regions).
TIED_GROUPS: dict[str, str] = {
    "has_forehead_color": "has_crown_color",
    "has_nape_color": "has_back_color",
    "has_upperparts_color": "has_back_color",
    "has_underparts_color": "has_belly_color",
    "has_primary_color": "has_back_color",
}
GROUP_ORDER = ["has_bill_shape", "has_wing_color", "has_upperparts_color", "has_underparts_color",
               "has_breast_pattern", "has_back_color", "has_tail_shape", "has_upper_tail_color",
               "has_head_pattern", "has_breast_color", "has_throat_color", "has_eye_color",
               "has_forehead_color", "has_nape_color", "has_belly_color", "has_wing_shape",
               "has_tail_pattern", "has_primary_color", "has_leg_color", "has_bill_color",
               "has_crown_color", "has_wing_pattern"]  # CUB's group order; values in CUB's order too


def group_values(group: str) -> list[str]:
    return DRAWN_GROUPS[TIED_GROUPS.get(group, group)]


ATTRIBUTES: list[str] = [f"{g}::{v}" for g in GROUP_ORDER for v in group_values(g)]

# Where each group lives on the bird (SPEC §4's part -> attribute groups, restricted to ours).
PART_GROUPS: dict[str, list[str]] = {
    "beak": ["has_bill_shape", "has_bill_color"],
    "crown": ["has_crown_color", "has_head_pattern"],
    "forehead": ["has_forehead_color", "has_head_pattern"],
    "nape": ["has_nape_color"],
    "left eye": ["has_eye_color"], "right eye": ["has_eye_color"],
    "throat": ["has_throat_color"],
    "breast": ["has_breast_color", "has_breast_pattern", "has_underparts_color"],
    "belly": ["has_belly_color", "has_underparts_color"],
    "back": ["has_back_color", "has_upperparts_color"],
    "left wing": ["has_wing_color", "has_wing_pattern", "has_wing_shape"],
    "right wing": ["has_wing_color", "has_wing_pattern", "has_wing_shape"],
    "tail": ["has_tail_shape", "has_tail_pattern", "has_upper_tail_color"],
    "left leg": ["has_leg_color"], "right leg": ["has_leg_color"],
}

BILL_NOUNS = {"curved_(up_or_down)": "Curlew", "dagger": "Heron", "hooked": "Shrike", "needle": "Needlebill",
              "all-purpose": "Warbler", "cone": "Finch"}
LOCAL_GROUPS = [g for g in DRAWN_GROUPS if g != "has_back_color"]
MIN_LOCAL_DIFFERENCES = 4


# The painted regions of one class get different colours (and differ from the body):
# within a class a colour then tells which part it is on, as a part's appearance does on
# a real species. With repeats (a yellow crown and a yellow throat) a prototype of
# "yellow" matched either part and its nearest patches disagreed on the part (SPEC §4).
REGION_COLOUR_GROUPS = ["has_crown_color", "has_throat_color", "has_breast_color", "has_belly_color",
                        "has_wing_color", "has_upper_tail_color"]


def class_profiles(n_classes: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """One value per drawn group for each class; every two classes differ in at least
    MIN_LOCAL_DIFFERENCES local groups, the body colour is shared, and a class's painted
    regions (REGION_COLOUR_GROUPS and the back) all have different colours."""
    profiles: list[dict[str, str]] = []
    for c in range(n_classes):
        for _attempt in range(1000):
            p = {g: vals[int(rng.integers(len(vals)))] for g, vals in DRAWN_GROUPS.items()}
            p["has_back_color"] = BODY_COLOURS[c % len(BODY_COLOURS)]
            free = [k for k in PART_COLOURS if k != p["has_back_color"]]
            for g, i in zip(REGION_COLOUR_GROUPS, rng.permutation(len(free))[:len(REGION_COLOUR_GROUPS)]):
                p[g] = free[int(i)]
            if all(sum(p[g] != q[g] for g in LOCAL_GROUPS) >= MIN_LOCAL_DIFFERENCES for q in profiles):
                break
        profiles.append(p)
    return profiles


def class_name(profile: dict[str, str], taken: set[str]) -> str:
    """A readable CUB-style name, e.g. `Red_crowned_Blue_winged_Finch` (unique)."""
    base = (f"{profile['has_crown_color'].capitalize()}_crowned_{profile['has_wing_color'].capitalize()}"
            f"_winged_{BILL_NOUNS[profile['has_bill_shape']]}")
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def draw_values(profile: dict[str, str], rng: np.random.Generator, keep: float = 0.9) -> dict[str, str]:
    """An image's values: the class value with probability `keep`, else another one."""
    out = {}
    for g, vals in DRAWN_GROUPS.items():
        v = profile[g]
        if rng.random() > keep and len(vals) > 1:
            others = [x for x in vals if x != v]
            v = others[int(rng.integers(len(others)))]
        out[g] = v
    for g, src in TIED_GROUPS.items():
        out[g] = out[src]
    return out


CERTAINTY_NAMES = ["not visible", "guessing", "probably", "definitely"]
CERTAINTY_P = [0.02, 0.08, 0.30, 0.60]   # annotators' certainty 1..4
WRONG_P = {1: 0.0, 2: 0.4, 3: 0.04, 4: 0.02}
EXTRA_P = 0.05                             # also ticks a second value


def annotate(values: dict[str, str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A simulated annotator: per attribute is_present (0/1), certainty (1..4), time (s).

    Certainty is chosen per group; "not visible" ticks nothing; a guess is often wrong;
    sure answers are rarely wrong; sometimes a second value is ticked too.
    """
    n = len(ATTRIBUTES)
    present = np.zeros(n, dtype=np.int8)
    cert = np.zeros(n, dtype=np.int8)
    times = np.round(rng.uniform(2.0, 30.0, size=n), 3)
    i = 0
    for g in GROUP_ORDER:
        vals = group_values(g)
        c = int(rng.choice(4, p=CERTAINTY_P)) + 1
        cert[i:i + len(vals)] = c
        if c > 1:
            j = vals.index(values[g])
            if rng.random() < WRONG_P[c]:
                j = int((j + 1 + rng.integers(len(vals) - 1)) % len(vals))
            present[i + j] = 1
            if rng.random() < EXTRA_P:
                present[i + int(rng.integers(len(vals)))] = 1
        i += len(vals)
    return present, cert, times
