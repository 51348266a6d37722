"""Typed, torch-free view of an atlas's `predictions` section (FORMATS.md §4).

The section is optional: atlases built before it, built with `--predictions 0`, and
imported heatmap atlases (no model, so no predictions) lack it. The question kinds that
need it (HIVE's distinction and agreement tasks, prototype–query similarity) call
`require_predictions`, which refuses such an atlas with one line naming it and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass

from common.atlas import Atlas
from study.errors import StudyError

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SourcePatch:
    """Where a prototype's source patch is shown from (an atlas image and a box in its pixels)."""
    image_id: int
    image: str        # relative to the atlas folder
    box: Box


@dataclass(frozen=True)
class Evidence:
    """One prototype behind a class: its contribution and where it activates the test image."""
    prototype: int
    similarity: float
    weight: float
    contribution: float     # similarity × weight
    box: Box                # high-activation box (95th percentile) on the test image, original pixels
    map: str                # the raw activation map (maps/<id>.npy)
    source: SourcePatch | None


@dataclass(frozen=True)
class ClassEvidence:
    cls: int                # class index (its name is never shown in distinction questions)
    rank: int               # 0 = the predicted class
    logit: float
    other: float            # contribution of the prototypes not listed (shown + other = logit)
    negative: float         # sum of the negative contributions (<= 0; shown <= logit - negative)
    evidence: tuple[Evidence, ...]

    def usable(self) -> tuple[Evidence, ...]:
        """The evidence that can be shown (has a source patch)."""
        return tuple(e for e in self.evidence if e.source is not None)


@dataclass(frozen=True)
class Prediction:
    image_id: int
    image: str
    label: int
    predicted: int
    correct: bool
    region: Box             # the crop the model saw, original pixels (what participants see)
    top: tuple[ClassEvidence, ...]
    truth: ClassEvidence | None   # the true class when it is not among `top`

    @property
    def predicted_class(self) -> ClassEvidence:
        return self.top[0]


def _box(value) -> Box:
    x0, y0, x1, y1 = (float(v) for v in value)
    return (x0, y0, x1, y1)


def _class_entry(entry: dict) -> ClassEvidence:
    evidence = []
    for ev in entry["evidence"]:
        src = ev.get("source")
        source = None if src is None else SourcePatch(int(src["image_id"]), str(src["image"]), _box(src["box"]))
        evidence.append(Evidence(int(ev["prototype"]), float(ev["similarity"]), float(ev["weight"]),
                                 float(ev["contribution"]), _box(ev["box"]), str(ev["map"]), source))
    return ClassEvidence(int(entry["class"]), int(entry["rank"]), float(entry["logit"]), float(entry["other"]),
                         float(entry["negative"]), tuple(evidence))


def shown_class_name(atlas: Atlas, cls: int) -> str:
    """A class name as a participant reads it (agreement task): CUB's "017.Cardinal" numbering
    and underscores removed, e.g. "001.Black_footed_Albatross" -> "Black footed Albatross"."""
    name = atlas.class_names[cls]
    head, dot, tail = name.partition(".")
    if dot and head.isdigit() and tail:
        name = tail
    return " ".join(name.replace("_", " ").split())


def has_predictions(atlas: Atlas) -> bool:
    return bool((atlas.doc.get("predictions") or {}).get("items"))


def predictions_k(atlas: Atlas) -> int:
    """How many top classes the atlas stores per prediction (0 without the section)."""
    return int((atlas.doc.get("predictions") or {}).get("k", 0))


def read_predictions(atlas: Atlas) -> list[Prediction]:
    """The section's items (validated on reading the atlas); [] when absent."""
    out = []
    for item in (atlas.doc.get("predictions") or {}).get("items", []):
        out.append(Prediction(int(item["image_id"]), str(item["image"]), int(item["label"]), int(item["predicted"]),
                              bool(item["correct"]), _box(item["region"]),
                              tuple(_class_entry(e) for e in item["top"]),
                              None if item.get("truth") is None else _class_entry(item["truth"])))
    return out


def require_predictions(atlas: Atlas, kind: str, k: int = 1) -> list[Prediction]:
    """The atlas's predictions, or one StudyError line saying why this question kind cannot
    use the atlas and how to fix it (an imported heatmap atlas has no model to predict with)."""
    where = f"{atlas.manifest}: question kind {kind!r}"
    if not has_predictions(atlas):
        imported = atlas.doc.get("model") is None or not (atlas.doc.get("created_from") or {}).get("checkpoint")
        if imported:
            raise StudyError(f"{where} needs the model's predictions and prototype evidence, which an imported "
                             f"heatmap atlas does not have (it has no model); use an atlas built from a checkpoint "
                             f"(python -m core atlas --checkpoint ...)")
        raise StudyError(f"{where} needs the atlas's 'predictions' section, which this atlas lacks (built before "
                         f"it or with --predictions 0); rebuild it: python -m core atlas --checkpoint ... "
                         f"--predictions 40 --overwrite")
    stored = predictions_k(atlas)
    if k > stored:
        raise StudyError(f"{where} shows {k} classes per question but the atlas stores the top {stored}; "
                         f"rebuild it with --prediction-k {k} or ask for fewer")
    return read_predictions(atlas)
