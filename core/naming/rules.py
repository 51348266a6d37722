"""The naming procedure's rules, each one explicit and configurable (SPEC §4).

Defaults follow the paper as we read it:
1. per image an attribute holds when it is present with certainty >= "probably" (3);
2. per class an attribute is kept when it holds for >= 20% of the class's test images;
3. the prototype's k = 5 nearest patches must agree on the part of the bird: each patch
   falls on the nearest *visible* part location to its box centre (accepted inside the
   box, or within `part_distance_factor` half-diagonals of the centre); when a patch comes
   with its feature cell's square (`cell_box`, as atlases record it), the part is looked
   up from the cell instead and accepted inside the cell grown by `cell_margin` cells on
   every side (the cell or its neighbours: a cell is a small share of the input, much
   smaller than what it sees); left/right eye, wing and leg are merged, and at least 4 of
   the 5 must share one part;
4. the name uses the attributes of that part that hold (1 and 2) for at least
   `min_support` of the agreeing patches' images, best supported first;
5. (ours, `source_must_hold`) the name describes the prototype's own patch: the first
   patch (the nearest; after projection the prototype's source, the patch an atlas shows
   first) must be on the agreed part (else the prototype is `inconsistent`), and each
   attribute in the name must hold (1 and 2) on its image. Without it a prototype whose
   source showed a red rounded wing was named "blue wing and pointed wings" from the
   other four patches (issue 25).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

# Part -> attribute groups that describe it (SPEC §4). "bird" is the whole bird: a
# patch whose box holds many parts at once.
DEFAULT_PART_GROUPS: dict[str, list[str]] = {
    "beak": ["has_bill_shape", "has_bill_color", "has_bill_length"],
    "crown": ["has_crown_color", "has_forehead_color", "has_head_pattern"],
    "forehead": ["has_forehead_color", "has_crown_color", "has_head_pattern"],
    "nape": ["has_nape_color"],
    "eye": ["has_eye_color"],
    "throat": ["has_throat_color"],
    "breast": ["has_breast_color", "has_breast_pattern", "has_underparts_color"],
    "belly": ["has_belly_color", "has_belly_pattern", "has_underparts_color"],
    "back": ["has_back_color", "has_back_pattern", "has_upperparts_color"],
    "wing": ["has_wing_color", "has_wing_pattern", "has_wing_shape"],
    "tail": ["has_tail_shape", "has_tail_pattern", "has_upper_tail_color", "has_under_tail_color"],
    "leg": ["has_leg_color"],
    "bird": ["has_primary_color", "has_size", "has_shape"],
}

CERTAINTY_NAMES = {"not visible": 1, "guessing": 2, "probably": 3, "definitely": 4}


@dataclass
class NamingRules:
    """Every threshold of the procedure; saved with the names as their provenance."""

    k: int = 5                          # nearest patches looked at
    min_certainty: int = 3              # step 1: certainty >= "probably"
    class_threshold: float = 0.20       # step 2: fraction of the class's images
    class_split: str = "test"           # step 2 counts images of this split: test | train | all
    part_consistency: int = 4           # step 3: patches that must share the part
    part_distance_factor: float = 1.0   # step 3: accept a part within this many half-diagonals of the centre
    cell_margin: float = 1.0            # step 3, patches with a cell_box: accept a part this many cells around it
    whole_bird_parts: int = 8           # a box holding this many distinct visible parts is the whole bird (0: off)
    min_support: float = 0.5            # step 4: fraction of the agreeing patches' images
    max_name_attributes: int = 2        # attributes used in the name (one per group)
    merge_sides: bool = True            # left/right eye, wing, leg -> eye, wing, leg
    source_must_hold: bool = True       # step 5: the first patch is on the part and the name holds on it
    part_groups: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_PART_GROUPS.items()})

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not 1 <= self.min_certainty <= 4:
            raise ValueError(f"min_certainty must be 1..4, got {self.min_certainty}")
        if not 0.0 <= self.class_threshold <= 1.0:
            raise ValueError(f"class_threshold must be in [0, 1], got {self.class_threshold}")
        if self.class_split not in ("test", "train", "all"):
            raise ValueError(f"class_split must be test, train or all, got {self.class_split!r}")
        if not 1 <= self.part_consistency <= self.k:
            raise ValueError(f"part_consistency must be in 1..k={self.k}, got {self.part_consistency}")
        if not self.cell_margin >= 0.0:
            raise ValueError(f"cell_margin must be >= 0, got {self.cell_margin}")
        if not 0.0 < self.min_support <= 1.0:
            raise ValueError(f"min_support must be in (0, 1], got {self.min_support}")
        if self.max_name_attributes < 1:
            raise ValueError(f"max_name_attributes must be >= 1, got {self.max_name_attributes}")

    @classmethod
    def for_k(cls, k: int, **overrides) -> NamingRules:
        """Rules looking at k patches, with the paper's 4-of-5 agreement scaled to k."""
        overrides.setdefault("part_consistency", max(1, math.ceil(0.8 * k - 1e-9)))
        return cls(k=k, **overrides)

    def part_of(self, part_name: str) -> str:
        """Canonical part name used for naming ("left wing" -> "wing")."""
        name = part_name.strip().lower()
        if self.merge_sides:
            for side in ("left ", "right "):
                if name.startswith(side):
                    return name[len(side):]
        return name

    def to_dict(self) -> dict:
        return asdict(self)
