"""Stimuli of HIVE's distinction and agreement tasks and of prototype–query similarity, on the
demo atlases built from the shipped demo checkpoints (tests/stimuli_helpers.py): positive
reasoning of the evidence, balanced selection, panels (sizes, k panels, balanced positions,
nothing that names a class or a method), identical preprocessing across methods."""
from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from study.atlas_reader import read_atlas
from study.media import YELLOW
from study.stimuli.candidates import (
    agreement_candidates,
    balanced_positions,
    distinction_candidates,
    panel_orders,
    similarity_candidates,
)
from study.stimuli.predictions import read_predictions
from study.stimuli.render import agreement_stimulus, distinction_stimulus, similarity_stimulus


@pytest.fixture(scope="module")
def atlases(demo_atlas_paths):
    paths = demo_atlas_paths
    return {key: read_atlas(path) for key, path in paths.items()}


def _secrets(atlas) -> list[bytes]:
    words = [atlas.method, atlas.name, *atlas.class_names, "focal", "ProtoPool"]
    return [w.encode() for w in words if w]


def _clean_png(data: bytes, atlas) -> Image.Image:
    for secret in _secrets(atlas):
        assert secret not in data
    img = Image.open(io.BytesIO(data))
    assert not getattr(img, "text", {}) and "exif" not in img.info and "icc_profile" not in img.info
    return img


def test_positive_reasoning_of_the_evidence(atlases):
    for atlas in atlases.values():
        preds = read_predictions(atlas)
        assert len(preds) == 40 and sum(p.correct for p in preds) == 20   # the demo models err often enough
        for p in preds:
            assert [c.rank for c in p.top] == [0, 1, 2, 3] and p.top[0].cls == p.predicted
            assert [c.logit for c in p.top] == sorted((c.logit for c in p.top), reverse=True)
            for c in p.top:
                shown = sum(e.contribution for e in c.evidence)
                assert shown + c.other == pytest.approx(c.logit, abs=1e-3)
                assert shown <= c.logit - c.negative + 1e-3          # the shown part of the positive evidence
                assert all(e.weight > 0 and e.similarity > 0 for e in c.evidence)


def test_distinction_candidates_balanced_and_complete(atlases):
    atlas = atlases["protopool"]
    cands = distinction_candidates(atlas, k=4, n=20, seed=3)
    assert len(cands) == 20 and sum(c.correct for c in cands) == 10
    assert len({c.prediction.image_id for c in cands}) == 20
    for c in cands:
        assert len(c.classes) == 4 and c.classes[0].cls == c.target == c.prediction.predicted
        assert all(cls.usable() for cls in c.classes)
    assert [c.prediction.image_id for c in cands] == \
        [c.prediction.image_id for c in distinction_candidates(atlas, k=4, n=20, seed=3)]
    truth = distinction_candidates(atlas, k=4, n=40, seed=0, target="correct")
    for c in truth:
        assert c.target == c.prediction.label and c.classes[0].cls == c.prediction.label
        assert len({cls.cls for cls in c.classes}) == 4


def test_panel_positions_balanced():
    for n, k in ((40, 4), (42, 4), (9, 3)):
        positions = balanced_positions(n, k, seed=5)
        counts = Counter(positions)
        assert set(counts) == set(range(k)) and max(counts.values()) - min(counts.values()) <= (0 if n % k == 0 else 1)
    orders = panel_orders(40, 4, seed=1)
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert Counter(o.index(0) for o in orders) == {0: 10, 1: 10, 2: 10, 3: 10}
    assert orders == panel_orders(40, 4, seed=1) and orders != panel_orders(40, 4, seed=2)


def test_distinction_panels(atlases):
    atlas = atlases["protopool"]
    cands = distinction_candidates(atlas, k=4, n=8, seed=0)
    orders = panel_orders(len(cands), 4, seed=0)
    answers = []
    for q, (cand, order) in enumerate(zip(cands, orders)):
        stim = distinction_stimulus(atlas, cand, order, seed=q, per_class=3, tile=96, image_side=256)
        assert stim.labels == ["A", "B", "C", "D"] and len(stim.panels) == 4
        assert stim.answer == "ABCD"[order.index(0)] and stim.classes[order.index(0)] == cand.target
        assert max(stim.image.size) == 256
        assert {p.size for p in stim.panels} == {stim.panels[0].size}          # one size for every panel
        assert stim.panels[0].width == 2 * 96 + 8                                # region | prototype
        pngs = stim.pngs()
        assert len(pngs) == 5
        for data in pngs:
            _clean_png(data, atlas)
        answers.append(stim.answer)
    assert Counter(answers) == {"A": 2, "B": 2, "C": 2, "D": 2}


def test_agreement_candidates_and_stimulus(atlases):
    atlas = atlases["protopool-nofocal"]
    cands = agreement_candidates(atlas, n=10, seed=0)
    assert len(cands) == 10 and sum(p.correct for p in cands) == 5
    stim = agreement_stimulus(atlas, cands[0], per_class=3, tile=80, image_side=200)
    assert stim.predicted == cands[0].predicted and max(stim.image.size) == 200
    assert stim.explanation.size == (2 * 80 + 8, 3 * 80 + 2 * 8)
    for data in stim.pngs():
        _clean_png(data, atlas)


def test_similarity_pairs_span_high_and_low(atlases):
    atlas = atlases["protopool"]
    pairs = similarity_candidates(atlas, n=20, seed=0)
    assert len(pairs) == 20 and Counter(p.band for p in pairs) == {"high": 10, "low": 10}
    assert min(p.similarity for p in pairs if p.band == "high") > max(p.similarity for p in pairs if p.band == "low")
    stim = similarity_stimulus(atlas, pairs[0], tile=96, image_side=256)
    assert stim.prototype.size == stim.crop.size == (96, 96) and max(stim.query.size) == 256
    query = np.asarray(stim.query)
    assert (np.abs(query.astype(int) - YELLOW).sum(-1) == 0).sum() > 20        # the yellow box is drawn
    (composite,) = stim.pngs()
    img = _clean_png(composite, atlas)
    assert img.size == (stim.query.height * 2 + stim.query.width + 16, stim.query.height)
    assert len(stim.pngs("separate")) == 3


def test_identical_preprocessing_across_methods(atlases):
    a, b = atlases["protopool"], atlases["protopool-nofocal"]
    common = {p.image_id for p in read_predictions(a)} & {p.image_id for p in read_predictions(b)}
    assert common
    pa = agreement_candidates(a, n=40, among=common)
    pb = {p.image_id: p for p in agreement_candidates(b, n=40, among=common)}
    for p in pa:
        if p.image_id in pb:
            sa, sb = agreement_stimulus(a, p), agreement_stimulus(b, pb[p.image_id])
            assert sa.image.tobytes() == sb.image.tobytes()                    # the same photo, pixel for pixel
            assert sa.explanation.size == sb.explanation.size
            break
    else:
        pytest.fail("no common image usable by both atlases")
