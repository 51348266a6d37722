"""Pictures of HIVE's distinction and agreement tasks and of prototype–query similarity.

PIL + numpy only (study/ never imports torch), built on study/media.py so every method's
stimuli get identical preprocessing: the test image is the crop the model saw (`region`),
scaled so its longer side is `image_side`; every patch is `patch_tile` (a square crop with
context, `tile` px, the box in yellow as SPEC §3 says). Boxes: the region a prototype
activates on the test image is its 95th-percentile box; the prototype's side is its source
patch. Nothing here writes text but the panel letters (A, B, ...): no class name, no
method; the images are fresh pixels (png_bytes strips everything else). The kind modules
name and blind the files.

Layout of an evidence row (HIVE shows "photo region | prototype" pairs): the test image's
activated region beside the prototype's source patch. Distinction: one panel per class,
rows in a seeded random order (HIVE shuffled them so the order does not hint at the
similarity); agreement: rows by contribution, largest first (HIVE's agreement page ordered
them by similarity).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common.atlas import Atlas
from study.media import BACKGROUND, GAP, YELLOW, hstack, load_rgb, patch_tile, png_bytes, scale_to, vstack
from study.stimuli.candidates import DistinctionCandidate, SimilarityPair
from study.stimuli.predictions import Box, ClassEvidence, Evidence, Prediction

LETTERS = "ABCDEFGHIJ"
TILE = 160          # px of a patch tile
IMAGE_SIDE = 448    # px, longer side of the test image (the saliency stimuli's default)
PER_CLASS = 3       # evidence rows per class
INK = (40, 40, 40)


@dataclass
class DistinctionStimulus:
    image: Image.Image                 # the test image (region), no boxes
    panels: list[Image.Image]          # one per class, in display order, labelled A, B, ...
    labels: list[str]                  # "A", "B", ... in display order
    classes: list[int]                 # the class of each panel (private: never shown)
    answer: str                        # the letter of the target panel

    def pngs(self) -> list[bytes]:
        """[test image, panel A, panel B, ...] as deterministic PNG bytes."""
        return [png_bytes(self.image)] + [png_bytes(p) for p in self.panels]


@dataclass
class AgreementStimulus:
    image: Image.Image                 # the test image (region), no boxes
    explanation: Image.Image           # the predicted class's evidence rows
    predicted: int                     # the predicted class (its name goes into the question text)
    correct: bool                      # private: whether the prediction is right

    def pngs(self) -> list[bytes]:
        return [png_bytes(self.image), png_bytes(self.explanation)]


@dataclass
class SimilarityStimulus:
    prototype: Image.Image             # the prototype's source patch (yellow box)
    query: Image.Image                 # the query image (region) with the activated region's yellow box
    crop: Image.Image                  # the activated region with context (yellow box), like the prototype tile

    def composite(self) -> Image.Image:
        """prototype | query image | query crop, on one picture (tiles scaled to the query's height)."""
        h = self.query.height
        return hstack([self.prototype.resize((h, h), Image.Resampling.LANCZOS), self.query,
                       self.crop.resize((h, h), Image.Resampling.LANCZOS)])

    def pngs(self, layout: str = "side_by_side") -> list[bytes]:
        if layout == "side_by_side":
            return [png_bytes(self.composite())]
        return [png_bytes(self.prototype), png_bytes(self.query), png_bytes(self.crop)]


class _Images:
    """Atlas images read once each (fresh pixels, no metadata)."""

    def __init__(self, atlas: Atlas):
        self.atlas = atlas
        self.cache: dict[str, Image.Image] = {}

    def get(self, rel: str, field_name: str) -> Image.Image:
        if rel not in self.cache:
            self.cache[rel] = load_rgb(self.atlas.file(rel, field_name))
        return self.cache[rel]


def region_image(image: Image.Image, region: Sequence[float], side: int,
                 boxes: Sequence[Box] = ()) -> Image.Image:
    """The region of an image scaled to `side` (longer side), with `boxes` (original pixels) in yellow."""
    x0, y0, x1, y1 = (int(round(v)) for v in region)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(image.width, max(x0 + 1, x1)), min(image.height, max(y0 + 1, y1))
    shown = scale_to(image.crop((x0, y0, x1, y1)), side)
    if boxes:
        sx, sy = shown.width / (x1 - x0), shown.height / (y1 - y0)
        draw = ImageDraw.Draw(shown)
        width = max(2, side // 100)
        for bx0, by0, bx1, by1 in boxes:
            rect = [(bx0 - x0) * sx, (by0 - y0) * sy, (bx1 - x0) * sx - 1, (by1 - y0) * sy - 1]
            rect = [min(max(0.0, v), (shown.width if i % 2 == 0 else shown.height) - 1) for i, v in enumerate(rect)]
            draw.rectangle(rect, outline=YELLOW, width=width)
    return shown


def evidence_row(images: _Images, prediction: Prediction, ev: Evidence, tile: int) -> Image.Image:
    """The test image's activated region | the prototype's source patch (both with context, yellow box)."""
    assert ev.source is not None
    query = patch_tile(images.get(prediction.image, "predictions.image"), ev.box, tile)
    proto = patch_tile(images.get(ev.source.image, "predictions.evidence.source.image"), ev.source.box, tile)
    return hstack([query, proto])


def _blank_row(tile: int) -> Image.Image:
    return Image.new("RGB", (2 * tile + GAP, tile), BACKGROUND)


def _header(letter: str, width: int, tile: int) -> Image.Image:
    height = max(24, tile // 4)
    card = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(card)
    font = ImageFont.load_default(size=max(14, height * 3 // 4))
    draw.text((width / 2, height / 2), letter, fill=INK, font=font, anchor="mm")
    return card


def evidence_panel(images: _Images, prediction: Prediction, cls: ClassEvidence, *, per_class: int, tile: int,
                   letter: str | None = None, shuffle: np.random.Generator | None = None) -> Image.Image:
    """A class's top `per_class` evidence rows (padded to `per_class` rows so every panel has
    one size), optionally shuffled and under a letter header."""
    rows = list(cls.usable()[:per_class])
    if shuffle is not None:
        rows = [rows[i] for i in shuffle.permutation(len(rows))]
    pictures = [evidence_row(images, prediction, ev, tile) for ev in rows]
    pictures += [_blank_row(tile)] * (per_class - len(pictures))
    panel = vstack(pictures)
    if letter is not None:
        panel = vstack([_header(letter, panel.width, tile), panel])
    return panel


def distinction_stimulus(atlas: Atlas, candidate: DistinctionCandidate, order: Sequence[int], *, seed: int = 0,
                         per_class: int = PER_CLASS, tile: int = TILE, image_side: int = IMAGE_SIDE
                         ) -> DistinctionStimulus:
    """The test image and one lettered evidence panel per class, in `order` (from
    `candidates.panel_orders`: indices into `candidate.classes`, 0 = the target). Rows inside
    a panel are shuffled with `seed`. Class names are never drawn."""
    if sorted(order) != list(range(len(candidate.classes))):
        raise ValueError(f"order must be a permutation of 0..{len(candidate.classes) - 1}, got {list(order)}")
    images = _Images(atlas)
    p = candidate.prediction
    rng = np.random.default_rng(seed)
    labels = list(LETTERS[:len(order)])
    panels = [evidence_panel(images, p, candidate.classes[i], per_class=per_class, tile=tile, letter=labels[pos],
                             shuffle=rng) for pos, i in enumerate(order)]
    image = region_image(images.get(p.image, "predictions.image"), p.region, image_side)
    classes = [candidate.classes[i].cls for i in order]
    return DistinctionStimulus(image, panels, labels, classes, labels[list(order).index(0)])


def agreement_stimulus(atlas: Atlas, prediction: Prediction, *, per_class: int = PER_CLASS, tile: int = TILE,
                       image_side: int = IMAGE_SIDE) -> AgreementStimulus:
    """The test image and the predicted class's explanation (rows by contribution, largest first)."""
    images = _Images(atlas)
    explanation = evidence_panel(images, prediction, prediction.predicted_class, per_class=per_class, tile=tile)
    image = region_image(images.get(prediction.image, "predictions.image"), prediction.region, image_side)
    return AgreementStimulus(image, explanation, prediction.predicted, prediction.correct)


def similarity_stimulus(atlas: Atlas, pair: SimilarityPair, *, tile: int = TILE,
                        image_side: int = IMAGE_SIDE) -> SimilarityStimulus:
    """The prototype's source patch | the query image with the region it activates most in a
    yellow box | that region with context."""
    images = _Images(atlas)
    query = images.get(pair.image, "predictions.image")
    return SimilarityStimulus(prototype=patch_tile(images.get(pair.source.image, "predictions.evidence.source.image"),
                                                   pair.source.box, tile),
                              query=region_image(query, pair.region, image_side, [pair.box]),
                              crop=patch_tile(query, pair.box, tile))
