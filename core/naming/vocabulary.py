"""Words for CUB attributes, and how words combine into a name a person would write.

Each attribute `has_<group>::<value>` becomes a `Term`: an adjective ("yellow",
"needle-shaped", "notched"), the noun it qualifies ("wing", "bill", "tail") and its kind
(colour, shape, pattern, length, size). Names are composed per noun with adjectives in
English order (size, length, shape, pattern, colour): "notched black tail",
"needle-shaped bill"; a pattern alone reads "striped wing pattern". The rules cover the
28 CUB groups; an unknown group falls back to its own words so any CUB-format data set
(e.g. the synthetic birds) still gets readable names.
"""
from __future__ import annotations

from dataclasses import dataclass

KIND_ORDER = ("size", "length", "shape", "pattern", "colour", "other")

# Noun for each group (the part of the bird the attribute describes).
GROUP_NOUNS = {
    "has_bill_shape": "bill", "has_bill_color": "bill", "has_bill_length": "bill",
    "has_wing_color": "wing", "has_wing_pattern": "wing", "has_wing_shape": "wings",
    "has_upperparts_color": "upperparts", "has_underparts_color": "underparts",
    "has_breast_pattern": "breast", "has_breast_color": "breast",
    "has_back_color": "back", "has_back_pattern": "back",
    "has_tail_shape": "tail", "has_tail_pattern": "tail",
    "has_upper_tail_color": "tail", "has_under_tail_color": "undertail",
    "has_head_pattern": "head", "has_throat_color": "throat", "has_eye_color": "eye",
    "has_forehead_color": "forehead", "has_nape_color": "nape", "has_crown_color": "crown",
    "has_belly_color": "belly", "has_belly_pattern": "belly", "has_leg_color": "legs",
    "has_size": "bird", "has_shape": "bird", "has_primary_color": "bird",
}

BILL_SHAPES = {
    "curved_(up_or_down)": "curved", "dagger": "dagger-shaped", "hooked": "hooked",
    "needle": "needle-shaped", "hooked_seabird": "hooked seabird", "spatulate": "spatulate",
    "all-purpose": "all-purpose", "cone": "cone-shaped", "specialized": "specialised",
}
BILL_LENGTHS = {"about_the_same_as_head": "head-length", "longer_than_head": "long",
                "shorter_than_head": "short"}
TAIL_SHAPES = {"forked_tail": "forked", "rounded_tail": "rounded", "notched_tail": "notched",
               "fan-shaped_tail": "fan-shaped", "pointed_tail": "pointed", "squared_tail": "square"}
WING_SHAPES = {"rounded-wings": "rounded", "pointed-wings": "pointed", "broad-wings": "broad",
               "tapered-wings": "tapered", "long-wings": "long"}
SIZES = {"large_(16_-_32_in)": "large", "small_(5_-_9_in)": "small", "very_large_(32_-_72_in)": "very large",
         "medium_(9_-_16_in)": "medium-sized", "very_small_(3_-_5_in)": "very small"}
PATTERNS = {"solid": "plain", "spotted": "spotted", "striped": "striped", "multi-colored": "multicoloured"}
# Head patterns name a feature of their own rather than qualify "head".
HEAD_PATTERNS = {"spotted": "spotted head", "malar": "malar stripe", "crested": "crested head",
                 "masked": "masked face", "unique_pattern": "uniquely patterned head",
                 "eyebrow": "eyebrow stripe", "eyering": "eye ring", "plain": "plain head",
                 "eyeline": "eye line", "striped": "striped head", "capped": "capped head"}
COLOURS = {"grey": "grey", "gray": "grey", "multi-colored": "multicoloured"}


@dataclass(frozen=True)
class Term:
    """One attribute in words: `adjective noun`, or a fixed `phrase` for odd ones."""

    attribute: str
    kind: str
    adjective: str
    noun: str
    phrase: str | None = None

    @property
    def words(self) -> str:
        """The attribute alone, as it would appear in a name."""
        if self.phrase:
            return self.phrase
        if self.kind == "pattern":
            return f"{self.adjective} {self.noun} pattern"
        if self.kind == "shape" and self.noun == "bird":
            return f"{self.adjective} bird"
        return f"{self.adjective} {self.noun}"


def _clean(value: str) -> str:
    return value.replace("_", " ").replace("  ", " ").strip()


def term(attribute: str) -> Term:
    """The words for an attribute `has_<group>::<value>` (any group, known or not)."""
    group, _, value = attribute.partition("::")
    noun = GROUP_NOUNS.get(group) or _clean(group.removeprefix("has_").rsplit("_", 1)[0]) or "bird"
    if group == "has_head_pattern":
        return Term(attribute, "pattern", _clean(value), "head", HEAD_PATTERNS.get(value, f"{_clean(value)} head"))
    if group == "has_bill_shape":
        return Term(attribute, "shape", BILL_SHAPES.get(value, _clean(value)), noun)
    if group == "has_bill_length":
        return Term(attribute, "length", BILL_LENGTHS.get(value, _clean(value)), noun)
    if group == "has_tail_shape":
        return Term(attribute, "shape", TAIL_SHAPES.get(value, _clean(value).removesuffix(" tail")), noun)
    if group == "has_wing_shape":
        return Term(attribute, "shape", WING_SHAPES.get(value, _clean(value).removesuffix("-wings")), noun)
    if group == "has_size":
        return Term(attribute, "size", SIZES.get(value, _clean(value).split(" (")[0]), noun)
    if group == "has_shape":
        return Term(attribute, "shape", _clean(value).replace(" ", " "), noun)
    if group.endswith("_pattern"):
        return Term(attribute, "pattern", PATTERNS.get(value, _clean(value)), noun)
    if group.endswith("_color") or group.endswith("_colour"):
        return Term(attribute, "colour", COLOURS.get(value, _clean(value)), noun)
    if group.endswith("_shape"):
        return Term(attribute, "shape", _clean(value), noun)
    return Term(attribute, "other", _clean(value), noun)


def compose(terms: list[Term]) -> str:
    """A name from a few terms, most important first (the first term's noun leads).

    Terms sharing a noun merge into one phrase with adjectives in English order and
    colours joined by "and"; phrases for different nouns are joined by "and".
    """
    if not terms:
        return ""
    pieces: list[str] = []
    by_noun: dict[str, list[Term]] = {}
    for t in terms:
        if t.phrase:
            pieces.append(t.phrase)
        else:
            by_noun.setdefault(t.noun, []).append(t)
    phrases: dict[str, tuple[str, str]] = {}  # noun -> (adjective words, phrase)
    for noun, group in by_noun.items():
        kinds = {t.kind for t in group}
        if kinds == {"pattern"}:
            adjectives = " and ".join(t.adjective for t in group)
            phrases[noun] = ("", f"{adjectives} {noun} pattern")
            continue
        ordered = sorted(group, key=lambda t: KIND_ORDER.index(t.kind))
        words: list[str] = []
        for kind in KIND_ORDER:
            adjectives = [t.adjective for t in ordered if t.kind == kind]
            if adjectives:
                words.append(" and ".join(adjectives))
        phrases[noun] = (" ".join(words), " ".join(words + [noun]))
    # keep the order in which nouns/phrases first appeared; nouns with the very same
    # adjectives share them ("yellow breast and underparts")
    result: list[str] = []
    shared: dict[str, int] = {}
    for t in terms:
        key = t.phrase or t.noun
        if t.phrase:
            if t.phrase not in result:
                result.append(t.phrase)
            continue
        adjectives, phrase = phrases[key]
        if phrase in result or (adjectives and adjectives in shared and key in result[shared[adjectives]]):
            continue
        if adjectives and adjectives in shared:
            result[shared[adjectives]] += f" and {key}"
        else:
            shared[adjectives] = len(result)
            result.append(phrase)
    return " and ".join(result)
