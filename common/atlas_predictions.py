"""The optional `predictions` section of an atlas (FORMATS.md §4): validation, torch-free.

Written by `python -m core atlas` (core/atlas/predictions.py): per chosen test image the
model's top-k classes with the prototype evidence behind each. Atlases without it (built
before it, built with `--predictions 0`, or imported heatmaps) stay valid; the question
kinds that need it refuse them (study/stimuli/predictions.py). `validate_predictions` is
called by `common.atlas.validate_manifest` with its validator, so a problem is the same one
line naming `atlas.json` and the field.
"""
from __future__ import annotations

from typing import Any


def validate_predictions(doc: dict[str, Any], v: Any, n_classes: int, prototype_ids: set[int]) -> None:
    """Check `doc["predictions"]` when present (`v`: common.atlas's validator)."""
    if "predictions" not in doc:
        return
    section = v.typed(doc, "predictions", dict)
    k = v.typed(section, "k", int, "predictions.")
    if k < 1:
        v.fail("predictions.k", f"must be at least 1, got {k}")
    v.typed(section, "per_class", int, "predictions.")
    v.typed(section, "split", str, "predictions.")
    v.typed(section, "rule", str, "predictions.")
    seen: set[int] = set()
    for i, item in enumerate(v.typed(section, "items", list, "predictions.")):
        w = f"predictions.items[{i}]."
        image_id = v.typed(item, "image_id", int, w)
        if image_id in seen:
            v.fail(f"{w}image_id", f"image {image_id} appears twice")
        seen.add(image_id)
        v.file(v.typed(item, "image", str, w), f"{w}image")
        label = _class(v, item, "label", w, n_classes)
        predicted = _class(v, item, "predicted", w, n_classes)
        correct = item.get("correct")
        if not isinstance(correct, bool):
            v.fail(f"{w}correct", f"expected true or false, got {correct!r}")
        if correct != (label == predicted):
            v.fail(f"{w}correct", f"is {correct} but label {label} and predicted {predicted}")
        v.box(item.get("region"), f"{w}region")
        top = v.typed(item, "top", list, w)
        if not 1 <= len(top) <= k:
            v.fail(f"{w}top", f"must hold 1..{k} classes (predictions.k), got {len(top)}")
        last = float("inf")
        for r, entry in enumerate(top):
            _class_entry(v, entry, f"{w}top[{r}].", n_classes, prototype_ids)
            if entry["rank"] != r:
                v.fail(f"{w}top[{r}].rank", f"must be {r} (top classes in logit order), got {entry['rank']}")
            if entry["logit"] > last + 1e-9:
                v.fail(f"{w}top[{r}].logit", "top classes must be sorted by logit, largest first")
            last = entry["logit"]
        if top and top[0]["class"] != predicted:
            v.fail(f"{w}predicted", f"is {predicted} but the top class is {top[0]['class']}")
        truth = v.typed(item, "truth", dict, w, nullable=True)
        in_top = any(e["class"] == label for e in top)
        if truth is None and not in_top and len(top) == k:
            v.fail(f"{w}truth", f"the true class {label} is not in 'top': give its evidence here")
        if truth is not None:
            _class_entry(v, truth, f"{w}truth.", n_classes, prototype_ids)
            if truth["class"] != label or in_top:
                v.fail(f"{w}truth.class", "must be the true class, and only when it is not in 'top'")


def _class(v: Any, obj: Any, key: str, prefix: str, n_classes: int) -> int:
    value = v.typed(obj, key, int, prefix)
    if not 0 <= value < n_classes:
        v.fail(f"{prefix}{key}", f"class index {value} out of range 0..{n_classes - 1}")
    return int(value)


def _class_entry(v: Any, entry: Any, w: str, n_classes: int, prototype_ids: set[int]) -> None:
    _class(v, entry, "class", w, n_classes)
    v.typed(entry, "rank", int, w)
    v.typed(entry, "logit", (int, float), w)
    v.typed(entry, "other", (int, float), w)
    if v.typed(entry, "negative", (int, float), w) > 1e-9:
        v.fail(f"{w}negative", f"the sum of the negative contributions must be <= 0, got {entry['negative']}")
    last = float("inf")
    for j, ev in enumerate(v.typed(entry, "evidence", list, w)):
        we = f"{w}evidence[{j}]."
        proto = v.typed(ev, "prototype", int, we)
        if prototype_ids and proto not in prototype_ids:
            v.fail(f"{we}prototype", f"prototype {proto} is not in 'prototypes'")
        v.typed(ev, "similarity", (int, float), we)
        v.typed(ev, "weight", (int, float), we)
        contribution = v.typed(ev, "contribution", (int, float), we)
        if contribution > last + 1e-9:
            v.fail(f"{we}contribution", "evidence must be sorted by contribution, largest first")
        last = contribution
        v.box(ev.get("box"), f"{we}box")
        v.file(v.typed(ev, "map", str, we), f"{we}map")
        source = v.typed(ev, "source", dict, we, nullable=True)
        if source is not None:
            v.typed(source, "image_id", int, f"{we}source.")
            v.file(v.typed(source, "image", str, f"{we}source."), f"{we}source.image")
            v.box(source.get("box"), f"{we}source.box")
