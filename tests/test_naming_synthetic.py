"""Naming recovers the known part and attribute on the synthetic birds (their truth is known).

Nearest-patch files are built from synthetic_truth.json: five boxes centred on one part
of five images of one class. The name must sit on that part, and every attribute in the
name must be the value actually drawn on (most of) those images.
"""
import json
from collections import Counter

import pytest

from core import cli
from core.data.synthetic import make_synthetic
from core.naming.rules import NamingRules

PARTS = {"wing": ["left wing", "right wing"], "beak": ["beak"], "tail": ["tail"], "crown": ["crown"],
         "breast": ["breast"], "throat": ["throat"], "eye": ["left eye", "right eye"], "leg": ["left leg", "right leg"]}


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    root = make_synthetic(tmp_path_factory.mktemp("syn") / "birds", classes=4, images_per_class=12, size=96, seed=3)
    return root, json.loads((root / "synthetic_truth.json").read_text())


def _patches(truth, class_id, part, half=2.0):
    """Boxes on `part` of the first five images of `class_id` where it is visible."""
    out = []
    for im in truth["images"]:
        if im["class_id"] != class_id:
            continue
        for name in PARTS[part]:
            x, y, visible = im["parts"][name]
            if visible:
                out.append({"image_id": im["image_id"], "box": [x - half, y - half, x + half, y + half],
                            "values": im["values"]})
                break
        if len(out) == 5:
            return out
    raise AssertionError(f"class {class_id} has fewer than 5 images showing {part}")


def test_names_recover_true_part_and_attribute(birds, tmp_path):
    root, truth = birds
    prototypes, expected = [], {}
    for class_id in (1, 2, 3, 4):
        for part in PARTS:
            pid = len(prototypes)
            patches = _patches(truth, class_id, part)
            prototypes.append({"id": pid, "nearest": [{"image_id": p["image_id"], "box": p["box"]} for p in patches]})
            expected[pid] = (part, [p["values"] for p in patches])
    nearest = tmp_path / "nearest.json"
    nearest.write_text(json.dumps({"format": "protoproto-nearest", "version": 1, "prototypes": prototypes}))
    out = tmp_path / "names.json"
    assert cli.main(["name", "--cub-root", str(root), "--nearest", str(nearest), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "protoproto-names" and doc["rules"] == NamingRules().to_dict()
    named = 0
    for rec in doc["prototypes"]:
        part, values = expected[rec["id"]]
        assert rec["part"] == part, rec
        assert all(p["part"] == part for p in rec["patches"])
        if rec["status"] != "named":
            continue
        named += 1
        assert rec["name"]
        for attribute in rec["name_attributes"]:
            group, value = attribute.split("::")
            drawn = Counter(v[group] for v in values)
            assert drawn[value] >= 3, (rec["name"], attribute, drawn)   # true on most of the images
        # the best-supported attribute is what was drawn on the images it claims
        top = rec["attributes"][0]
        group, value = top["attribute"].split("::")
        by_id = {p["image_id"]: p for p in rec["patches"]}
        assert all(by_id[i] for i in top["images"])
    assert named >= 0.8 * len(doc["prototypes"])


def test_mixed_parts_are_inconsistent(birds, tmp_path):
    root, truth = birds
    parts = ["wing", "wing", "beak", "tail", "crown"]
    mixed = [_patches(truth, 1, p)[i] for i, p in enumerate(parts)]
    nearest = tmp_path / "n.json"
    nearest.write_text(json.dumps({"format": "protoproto-nearest", "version": 1, "prototypes": [
        {"id": 0, "nearest": [{"image_id": p["image_id"], "box": p["box"]} for p in mixed]}]}))
    out = tmp_path / "names.json"
    assert cli.main(["name", "--cub-root", str(root), "--nearest", str(nearest), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())["prototypes"][0]
    assert rec["status"] == "inconsistent" and rec["name"] is None and rec["part_votes"]["wing"] == 2


def test_unknown_image_id_is_one_clear_error(birds, tmp_path, capsys):
    root, _ = birds
    nearest = tmp_path / "n.json"
    nearest.write_text(json.dumps({"format": "protoproto-nearest", "version": 1, "prototypes": [
        {"id": 0, "nearest": [{"image_id": 99999, "box": [0, 0, 4, 4]}]}]}))
    out = tmp_path / "names.json"
    assert cli.main(["name", "--cub-root", str(root), "--nearest", str(nearest), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "99999" in err and str(nearest) in err
    assert not out.exists()
