"""The atlas's `predictions` section (FORMATS.md §4; core/atlas/predictions.py): top-k classes,
correctness, prototype evidence, balance between right and wrong predictions; old atlases
and imported ones still load."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from core.atlas.build import AtlasOptions, build_atlas
from core.atlas.format import read_atlas
from core.atlas.predictions import choose_balanced
from core.data import load_dataset
from core.data.synthetic import make_synthetic
from core.errors import FormatError
from core.explain.local import explain_image
from core.architectures import build_model
from core.model.config import ModelConfig
from core.training.checkpoint import load_checkpoint, save_checkpoint
from core.training.projection import project_prototypes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny random ProtoPool (5 classes, so top-4 leaves one out) and its atlas with 10 predictions."""
    base = tmp_path_factory.mktemp("predictions")
    root = make_synthetic(base / "birds", classes=5, images_per_class=8, size=96, seed=3)
    torch.manual_seed(0)
    cfg = ModelConfig(architecture="protopool", backbone="resnet18", weights="none", truncate="layer3",
                      prototype_depth=16, num_prototypes=12, num_slots=2, num_classes=5)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.last_layer.weight.add_(0.1 * torch.randn_like(model.last_layer.weight))
    data = {"dataset": "cub", "root": str(root), "image_size": 64, "crop_to_bbox": True, "val_fraction": 0.1,
            "split_seed": 0}
    train = load_dataset("cub", root, split="train", image_size=64)
    records = project_prototypes(model, train, batch_size=16)
    ckpt = save_checkpoint(base / "model.pt", model, config={"model": cfg.to_dict(), "data": data},
                           class_names=train.class_names, history=[], projection=records)
    out = base / "atlases" / "pool"
    opts = AtlasOptions(images=2, k=3, pairs=3, batch_size=16, device="cpu", threads=2, predictions=10,
                        prediction_k=4, prediction_per_class=3)
    build_atlas(ckpt, out, opts=opts)
    return root, ckpt, out


def test_section_shape_and_ranks(built):
    root, ckpt, out = built
    atlas = read_atlas(out)
    section = atlas.doc["predictions"]
    assert section["k"] == 4 and section["per_class"] == 3 and section["split"] == "test"
    items = section["items"]
    assert len(items) == 10
    model, _ = load_checkpoint(ckpt, map_location="cpu")
    test = load_dataset("cub", root, split="test", image_size=64)
    by_id = {int(r.image_id): i for i, r in enumerate(test.records)}
    for item in items:
        top = item["top"]
        assert [e["rank"] for e in top] == [0, 1, 2, 3]
        logits = [e["logit"] for e in top]
        assert logits == sorted(logits, reverse=True)
        assert item["predicted"] == top[0]["class"]
        assert item["correct"] == (item["predicted"] == item["label"])
        assert (item["truth"] is None) == (item["label"] in [e["class"] for e in top])
        # the logits are the model's, and the evidence adds up to them (shown + other)
        expl = explain_image(model, test, by_id[item["image_id"]], classes=[e["class"] for e in top])
        assert item["label"] == expl.true_label and item["predicted"] == expl.predicted
        for entry in top:
            assert entry["logit"] == pytest.approx(float(expl.logits[entry["class"]]), abs=1e-4)
            shown = sum(ev["contribution"] for ev in entry["evidence"])
            assert shown + entry["other"] == pytest.approx(entry["logit"], abs=1e-4)
            assert entry["negative"] <= 0 and shown <= entry["logit"] - entry["negative"] + 1e-4
            contributions = [ev["contribution"] for ev in entry["evidence"]]
            assert contributions == sorted(contributions, reverse=True) and all(c > 0 for c in contributions)
            assert len(entry["evidence"]) <= 3
            for ev in entry["evidence"]:
                assert ev["similarity"] * ev["weight"] == pytest.approx(ev["contribution"], rel=1e-5)
                x0, y0, x1, y1 = ev["box"]
                rx0, ry0, rx1, ry1 = item["region"]
                assert rx0 <= x0 < x1 <= rx1 and ry0 <= y0 < y1 <= ry1   # inside the crop the model saw
                assert np.load(out / ev["map"]).ndim == 2
                assert ev["source"] is not None and (out / ev["source"]["image"]).is_file()


def test_source_patch_is_the_projection_image(built):
    _, _, out = built
    atlas = read_atlas(out)
    protos = atlas.prototypes
    for item in atlas.doc["predictions"]["items"]:
        for entry in item["top"]:
            for ev in entry["evidence"]:
                assert ev["source"]["image_id"] == protos[ev["prototype"]]["source"]["image_id"]


def test_balanced_choice():
    correct = np.array([True] * 30 + [False] * 7)
    labels = np.arange(37) % 5
    chosen = choose_balanced(correct, labels, 20, seed=0)
    assert len(chosen) == 20 and len(set(chosen)) == 20
    assert sum(not correct[i] for i in chosen) == 7            # all the wrong ones, the rest right
    chosen = choose_balanced(np.array([True, False] * 20), np.arange(40) % 4, 10, seed=1)
    assert sum(np.array([True, False] * 20)[chosen]) == 5
    assert choose_balanced(correct, labels, 10, 0) == choose_balanced(correct, labels, 10, 0)


def test_atlas_without_section_still_loads(built, tmp_path):
    _, _, out = built
    old = tmp_path / "old"
    shutil.copytree(out, old)
    doc = json.loads((old / "atlas.json").read_text())
    del doc["predictions"]
    (old / "atlas.json").write_text(json.dumps(doc))
    assert "predictions" not in read_atlas(old).doc


def test_bad_section_is_one_line(built, tmp_path):
    _, _, out = built
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    doc = json.loads((bad / "atlas.json").read_text())
    item = doc["predictions"]["items"][0]
    item["correct"] = not item["correct"]
    (bad / "atlas.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"predictions\.items\[0\]\.correct"):
        read_atlas(bad)
    item["correct"] = not item["correct"]
    item["top"] = list(reversed(item["top"]))
    (bad / "atlas.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"predictions\.items\[0\]\.top\[0\]\.rank"):
        read_atlas(bad)
