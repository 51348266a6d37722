"""Synthetic birds: exact CUB layout, ground truth read back through the CUB reader."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.data.cub import read_cub_annotations, read_cub_table
from core.data.synthetic import main as synth_main, make_synthetic
from core.data.synthetic_draw import PART_REGION, REGIONS, draw_bird
from core.data.synthetic_profiles import (ATTRIBUTES, DRAWN_GROUPS, LOCAL_GROUPS, MIN_LOCAL_DIFFERENCES,
                                          PARTS, class_profiles, draw_values)
from core.errors import DataError
from data_fixtures import synthetic_set, truth

ROOT = Path(__file__).resolve().parent.parent
CUB_FILES = ["images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt",
             "bounding_boxes.txt", "parts/parts.txt", "parts/part_locs.txt",
             "attributes/image_attribute_labels.txt", "attributes/certainties.txt",
             "attributes/class_attribute_labels_continuous.txt"]


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return synthetic_set(tmp_path_factory)


def test_layout_is_cub(birds):
    for f in CUB_FILES:
        assert (birds / "CUB_200_2011" / f).is_file(), f
    assert (birds / "attributes.txt").is_file()
    assert (birds / "synthetic_truth.json").is_file()
    assert not list(birds.parent.glob(".birds.tmp-*"))  # the temporary folder is gone
    line = (birds / "CUB_200_2011" / "attributes" / "image_attribute_labels.txt").read_text().splitlines()[0]
    assert len(line.split()) == 5
    assert (birds / "CUB_200_2011" / "parts" / "parts.txt").read_text().splitlines()[6] == "7 left eye"


def test_reader_matches_truth(birds):
    t = truth(birds)
    table = read_cub_table(birds)
    ann = read_cub_annotations(birds)
    imgs = t["images"]
    assert len(imgs) == 24 and list(ann.image_ids) == [im["image_id"] for im in imgs]
    assert ann.class_names == [c["name"] for c in t["classes"]]
    np.testing.assert_array_equal(ann.labels, [im["class_id"] - 1 for im in imgs])
    np.testing.assert_array_equal(ann.is_train, [im["is_training"] for im in imgs])
    np.testing.assert_allclose(ann.bboxes, [im["box"] for im in imgs], atol=0.051)
    assert ann.part_names == PARTS == t["parts"]
    for r, im in enumerate(imgs):
        np.testing.assert_allclose(ann.part_locs[r], [im["parts"][p] for p in PARTS], atol=1e-9)
        assert table.paths[r] == birds / "CUB_200_2011" / "images" / im["path"]
    assert ann.attribute_names == ATTRIBUTES == t["attributes"]
    assert all(n.startswith("has_") and "::" in n for n in ann.attribute_names)
    # every image: 6 train / test per class in 4 classes x 6 images, stratified 50:50
    for c in range(4):
        assert ann.is_train[ann.labels == c].sum() == 3


def test_annotators_mostly_agree_with_drawn_values(birds):
    t = truth(birds)
    ann = read_cub_annotations(birds)
    col = {n: i for i, n in enumerate(ann.attribute_names)}
    agree = total = 0
    for r, im in enumerate(t["images"]):
        for g, v in im["values"].items():
            sure = ann.certainty[r, col[f"{g}::{v}"]] >= 3
            if sure:
                total += 1
                agree += bool(ann.is_present[r, col[f"{g}::{v}"]])
            if ann.certainty[r, col[f"{g}::{v}"]] == 1:  # not visible: nothing ticked in the group
                assert not ann.is_present[r, [col[a] for a in ann.attribute_names if a.startswith(g + "::")]].any()
    assert total > 0.8 * len(t["images"]) * len(t["images"][0]["values"])
    assert 0.93 <= agree / total < 1.0  # noisy like real annotators, but mostly right
    # class percentages are the per-class share of images with the attribute ticked
    for c in range(4):
        np.testing.assert_allclose(ann.class_attribute_percent[c], ann.is_present[ann.labels == c].mean(0) * 100,
                                   atol=1e-9)


def test_classes_differ_in_local_parts(birds):
    t = truth(birds)
    profiles = [c["profile"] for c in t["classes"]]
    for i in range(len(profiles)):
        for j in range(i):
            diff = sum(profiles[i][g] != profiles[j][g] for g in LOCAL_GROUPS)
            assert diff >= MIN_LOCAL_DIFFERENCES
    many = class_profiles(60, np.random.default_rng(5))
    assert len({p["has_back_color"] for p in many}) <= 3  # body colour is shared, not a class key
    for i in range(60):
        for j in range(i):
            assert sum(many[i][g] != many[j][g] for g in LOCAL_GROUPS) >= MIN_LOCAL_DIFFERENCES
    # within a class every painted region has its own colour, so a colour names its part
    from core.data.synthetic_profiles import REGION_COLOUR_GROUPS

    for p in many + profiles:
        colours = [p[g] for g in REGION_COLOUR_GROUPS] + [p["has_back_color"]]
        assert len(set(colours)) == len(colours), colours
    # images follow their class profile most of the time
    for im in t["images"]:
        prof = profiles[im["class_id"] - 1]
        assert sum(im["values"][g] == prof[g] for g in DRAWN_GROUPS) >= len(DRAWN_GROUPS) - 6


def test_side_view_hides_far_parts(birds):
    for im in truth(birds)["images"]:
        near = im["pose"]["facing"]
        far = "right" if near == "left" else "left"
        for kind in ("eye", "wing", "leg"):
            assert im["parts"][f"{near} {kind}"][2] == 1
            assert im["parts"][f"{far} {kind}"] == [0.0, 0.0, 0]
        x0, y0, x1, y1 = im["box"]
        for name, (x, y, vis) in im["parts"].items():
            if vis:
                assert x0 <= x <= x1 and y0 <= y <= y1, name


def test_part_locations_lie_on_their_parts():
    rng = np.random.default_rng(11)
    profiles = class_profiles(8, rng)
    hits = total = 0
    for k in range(40):
        d = draw_bird(draw_values(profiles[k % 8], rng), rng, 128)
        for name, (x, y, vis) in d.parts.items():
            if vis:
                total += 1
                hits += REGIONS[d.regions[int(y), int(x)]] == PART_REGION[name]
    assert hits == total


def test_worker_processes_draw_the_same_files(tmp_path, monkeypatch):
    """From PARALLEL_FROM images on, the birds are drawn in worker processes: the files are
    byte-identical to drawing them one after the other."""
    import core.data.synthetic as synthetic

    par = make_synthetic(tmp_path / "par", classes=4, images_per_class=60, size=40, seed=3)
    monkeypatch.setattr(synthetic, "PARALLEL_FROM", 10**9)
    ser = make_synthetic(tmp_path / "ser", classes=4, images_per_class=60, size=40, seed=3)
    files = sorted(p.relative_to(par) for p in par.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(ser) for p in ser.rglob("*") if p.is_file()) and len(files) > 240
    assert all((par / f).read_bytes() == (ser / f).read_bytes() for f in files)


def test_deterministic_and_seed_dependent(tmp_path):
    a = make_synthetic(tmp_path / "a", classes=2, images_per_class=3, size=48, seed=7)
    b = make_synthetic(tmp_path / "b", classes=2, images_per_class=3, size=48, seed=7)
    c = make_synthetic(tmp_path / "c", classes=2, images_per_class=3, size=48, seed=8)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len(files_a) == 11 + 6 + 1
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "synthetic_truth.json").read_bytes() != (c / "synthetic_truth.json").read_bytes()


def test_refuses_existing_folder_and_bad_arguments(tmp_path):
    out = make_synthetic(tmp_path / "s", classes=2, images_per_class=2, size=32)
    before = (out / "synthetic_truth.json").read_bytes()
    with pytest.raises(DataError, match="already exists"):
        make_synthetic(out, classes=3, images_per_class=2, size=32)
    assert (out / "synthetic_truth.json").read_bytes() == before
    for kw in ({"classes": 0}, {"images_per_class": 1}, {"size": 8}):
        with pytest.raises(DataError):
            make_synthetic(tmp_path / "bad", **{"classes": 2, "images_per_class": 2, "size": 32, **kw})
    assert not (tmp_path / "bad").exists()
    make_synthetic(out, classes=3, images_per_class=2, size=32, overwrite=True)
    assert len(read_cub_table(out).class_names) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporary leftovers


def test_cli(tmp_path, capsys):
    assert synth_main(["--out", str(tmp_path / "x"), "--classes", "2", "--images-per-class", "2",
                       "--size", "40", "--seed", "3"]) == 0
    assert "4 images" in capsys.readouterr().out
    proc = subprocess.run([sys.executable, "-m", "core", "make-synthetic", "--out", str(tmp_path / "x"),
                           "--classes", "2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: output folder already exists")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_saved_pixels_at_parts_show_the_drawn_colours(tmp_path_factory):
    """In the written JPEGs, the pixel under each part location is (nearest palette colour)
    the colour the truth says was drawn there: parts, boxes and values agree on disk."""
    from PIL import Image

    from core.data.synthetic_profiles import COLOURS

    root = synthetic_set(tmp_path_factory, classes=3, images_per_class=10, size=128, seed=1)
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], dtype=float)
    checks = [("back", "has_back_color", None), ("belly", "has_belly_color", None),
              ("breast", "has_breast_color", "has_breast_pattern"), ("crown", "has_crown_color", None),
              ("forehead", "has_forehead_color", None), ("throat", "has_throat_color", None),
              ("nape", "has_nape_color", None), ("wing", "has_wing_color", "has_wing_pattern"),
              ("tail", "has_upper_tail_color", "has_tail_pattern"), ("leg", "has_leg_color", None),
              ("beak", "has_bill_color", None)]
    hits = total = 0
    for im in truth(root)["images"]:
        with Image.open(root / "CUB_200_2011" / "images" / im["path"]) as f:
            rgb = np.asarray(f.convert("RGB"), dtype=float)
        for part, group, pattern in checks:
            if pattern and im["values"][pattern] != "solid":
                continue
            x, y, _ = im["parts"].get(part) or im["parts"][f"{im['pose']['facing']} {part}"]
            got = names[int(np.argmin(((palette - rgb[int(y), int(x)]) ** 2).sum(axis=1)))]
            total += 1
            hits += got == im["values"][group]
    assert total >= 200 and hits / total >= 0.98


def test_redrawn_regions_match_the_saved_birds(birds, tmp_path):
    """redraw_regions draws an image again from its seed: the map has the image's size,
    its painted pixels span exactly the saved box, and every visible part location lies on
    its own region. A folder drawn by other code (stored truth differs) is refused."""
    import json
    import shutil

    from PIL import Image

    from core.data.synthetic import redraw_regions

    doc = truth(birds)
    images = doc["images"][:3]
    maps = redraw_regions(birds, [im["image_id"] for im in images])
    for im in images:
        regions = maps[im["image_id"]]
        with Image.open(birds / "CUB_200_2011" / "images" / im["path"]) as pic:
            assert regions.shape == (pic.height, pic.width)
        ys, xs = np.nonzero(regions != REGIONS.index("background"))
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == [int(v) for v in im["box"]]
        for name, (x, y, visible) in im["parts"].items():
            if visible:   # within a pixel (a 64 px bird's bill is a few pixels thin)
                r, c = int(y - 0.5), int(x - 0.5)
                around = {REGIONS[v] for v in regions[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].ravel()}
                assert PART_REGION[name] in around, name
    with pytest.raises(DataError, match="image_id 99999"):
        redraw_regions(birds, [99999])
    other = tmp_path / "other"
    shutil.copytree(birds, other)
    doc["images"][0]["parts"]["tail"][0] += 5.0
    (other / "synthetic_truth.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=f"image_id {images[0]['image_id']} draws differently"):
        redraw_regions(other, [images[0]["image_id"]])
    del doc["arguments"]["seed"]
    (other / "synthetic_truth.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="'arguments' lacks seed"):
        redraw_regions(other, [images[0]["image_id"]])


def test_part_region_agreement_bounds_what_the_vote_can_confirm(birds, tmp_path):
    """A pixel's nearest part location lies on the pixel's own painted region for most
    pixels but not all: small regions around their location (leg, tail) always agree,
    the large back (wing painted over it, nape beside it) often does not."""
    from core.data.synthetic import part_region_agreement

    overall, per_region = part_region_agreement(birds, every=1)
    assert 0.6 < overall < 0.95
    assert per_region["leg"] > 0.9 and per_region["tail"] > 0.9
    assert per_region["back"] < 0.7
    assert "background" not in per_region
    assert part_region_agreement(birds, every=4)[0] != overall   # a sample, not every image
    with pytest.raises(DataError, match="synthetic_truth.json"):
        part_region_agreement(tmp_path)
