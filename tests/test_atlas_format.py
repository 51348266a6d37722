"""The atlas reader/validator and atomic writer (FORMATS.md §4), torch-free."""
import copy
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from core.atlas.format import AtlasWriter, empty_manifest, read_atlas, validate_manifest
from core.png import encode_png
from core.errors import FormatError


def _small_atlas(tmp_path, name="a"):
    rng = np.random.default_rng(0)
    with AtlasWriter(tmp_path / name) as w:
        doc = empty_manifest(name, "ProtoPool", "cub", ["A", "B"])
        img = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        rel = w.add_image(5, img)
        doc["prototypes"] = [
            {"id": i, "classes": [i % 2], "source": {"image_id": 5, "image": rel, "cell": [1, 2],
                                                    "box": [1.0, 2.0, 10.0, 12.0]},
             "nearest": [{"image_id": 5, "image": rel, "box": [0, 0, 5, 5], "distance": 0.1}],
             "name": None, "naming": None} for i in range(3)]
        doc["heatmaps"] = [{"id": "p000_i5", "image_id": 5, "image": rel, "overlay": w.add_overlay("p000_i5", img),
                            "map": w.add_map("p000_i5", np.ones((7, 7))), "prototype": 0, "label": 1,
                            "box": [0, 0, 40, 30]}]
        doc["pairs"]["euclidean"] = [{"a": 0, "b": 1, "score": 2.0}, {"a": 1, "b": 2, "score": 1.0}]
        w.commit(doc)
    return tmp_path / name, img


def test_roundtrip_and_png(tmp_path):
    root, img = _small_atlas(tmp_path)
    atlas = read_atlas(root / "atlas.json")
    assert atlas.root == root and len(atlas.doc["prototypes"]) == 3
    assert np.array_equal(cv2.imread(str(root / "images/5.png"))[..., ::-1], img)
    assert np.load(root / "maps/p000_i5.npy").dtype == np.float32
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(cv2.imdecode(np.frombuffer(encode_png(grey), np.uint8), cv2.IMREAD_UNCHANGED), grey)
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary folder left


def _mutated(root, change):
    doc = json.loads((root / "atlas.json").read_text())
    change(doc)
    (root / "atlas.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(version=0), "field 'version': this reader handles version 1, got 0"),
    (lambda d: d.update(format="x"), "field 'format'"),
    (lambda d: d.pop("pairs"), "field 'pairs': missing"),
    (lambda d: d["heatmaps"][0].update(overlay="overlays/none.png"), "heatmaps\\[0\\].overlay': file 'overlays/none.png' does not exist"),
    (lambda d: d["heatmaps"][0].update(image="../x.png"), "must stay inside"),
    (lambda d: d["prototypes"][1]["nearest"][0].update(box=[5, 5, 1, 9]), "prototypes\\[1\\].nearest\\[0\\].box"),
    (lambda d: d["prototypes"][1]["nearest"][0].update(cell_box=[5, 5, 1, 9]), "nearest\\[0\\].cell_box"),
    (lambda d: d["prototypes"][1]["nearest"][0].update(cell=[1]), "nearest\\[0\\].cell'"),
    (lambda d: d["prototypes"][0].update(classes=[7]), "out of range"),
    (lambda d: d["pairs"]["euclidean"].reverse(), "sorted most similar first"),
    (lambda d: d["pairs"]["euclidean"][0].update(a=1, b=0), "a < b"),
    (lambda d: d["prototypes"][2].update(nearest=[]), "prototype 2 has no nearest patches"),
    (lambda d: d["accuracy"].update(test=85.3), "fraction"),
    (lambda d: d["heatmaps"].append(copy.deepcopy(d["heatmaps"][0])), "duplicate heatmap id"),
])
def test_reader_rejects_with_one_clear_line(tmp_path, change, message):
    root, _ = _small_atlas(tmp_path)
    _mutated(root, change)
    with pytest.raises(FormatError, match=message) as info:
        read_atlas(root)
    assert "\n" not in str(info.value) and "atlas.json" in str(info.value)


def test_writer_failure_leaves_nothing_and_keeps_old(tmp_path):
    root, _ = _small_atlas(tmp_path)
    before = (root / "atlas.json").read_text()
    with pytest.raises(RuntimeError):
        with AtlasWriter(root, overwrite=True) as w:
            w.add_image(1, np.zeros((4, 4, 3), np.uint8))
            raise RuntimeError("boom")
    bad = empty_manifest("a", "m", "cub", ["A"])
    bad["heatmaps"] = [{"id": "x", "image_id": 1, "image": "images/1.png", "overlay": "overlays/x.png",
                        "map": None, "prototype": None, "label": None, "box": None}]
    with pytest.raises(FormatError, match="overlays/x.png"):
        with AtlasWriter(root, overwrite=True) as w:
            w.add_image(1, np.zeros((4, 4, 3), np.uint8))
            w.commit(bad)
    assert (root / "atlas.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    with pytest.raises(FormatError, match="already exists"):
        AtlasWriter(root)


def test_validate_without_files():
    doc = empty_manifest("n", "m", "cub", ["A"])
    validate_manifest(doc)
    doc["dataset"]["num_classes"] = 3
    with pytest.raises(FormatError, match="class_names"):
        validate_manifest(doc)


def test_format_module_is_torch_free():
    code = "import sys, core.atlas.format; print(sorted(m for m in ('torch', 'cv2', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
