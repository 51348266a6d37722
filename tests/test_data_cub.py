"""CUB reader and ImageDataset: splits, crop/resize, geometry, tolerance, bad input."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from core.data import Geometry, ImageDataset, load_dataset, read_cub_annotations
from core.data.base import IMAGENET_MEAN, IMAGENET_STD
from core.data.synthetic_profiles import COLOURS
from core.errors import DataError
from data_fixtures import copy_set, synthetic_set, truth


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return synthetic_set(tmp_path_factory)


@pytest.fixture(scope="module")
def big_birds(tmp_path_factory):
    return synthetic_set(tmp_path_factory, classes=3, images_per_class=10, size=128, seed=1)


def test_splits(birds):
    kw = dict(image_size=32, val_fraction=0.34, seed=0)
    tr, va, tv, te = (load_dataset("cub", birds, split=s, **kw) for s in ("train", "val", "trainval", "test"))
    ids = {n: {r.image_id for r in d.records} for n, d in zip("tr va tv te".split(), (tr, va, tv, te))}
    assert ids["tr"] | ids["va"] == ids["tv"] and not ids["tr"] & ids["va"]
    assert not ids["tv"] & ids["te"] and len(ids["tv"]) + len(ids["te"]) == 24
    t = truth(birds)
    assert ids["te"] == {im["image_id"] for im in t["images"] if not im["is_training"]}
    assert sorted(r.label for r in va.records) == [0, 1, 2, 3]  # one of 3 train images per class
    assert isinstance(tr, ImageDataset) and tr.num_classes == 4 and tr.class_names == va.class_names
    same = load_dataset("cub", birds / "CUB_200_2011", split="val", **kw)
    assert [r.image_id for r in same.records] == [r.image_id for r in va.records]
    others = [{r.image_id for r in load_dataset("cub", birds, split="val", image_size=32, val_fraction=0.34,
                                                 seed=s).records} for s in range(1, 6)]
    assert any(o != ids["va"] for o in others)


def test_item_is_normalised_crop_of_the_box(big_birds):
    ds = load_dataset("cub", big_birds, split="test", image_size=48)
    t = {im["image_id"]: im for im in truth(big_birds)["images"]}
    for i in (0, 5):
        x, label, idx = ds[i]
        rec = ds.records[i]
        assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and idx == i and label == rec.label
        rgb = ds.load_rgb(i)
        assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        back = ((x * std + mean) * 255).permute(1, 2, 0).numpy()
        np.testing.assert_allclose(back, rgb, atol=1e-3)
        x0, y0, x1, y1 = t[rec.image_id]["box"]
        with Image.open(rec.path) as im:
            ref = np.asarray(im.convert("RGB").resize((48, 48), Image.Resampling.BILINEAR, box=(x0, y0, x1, y1)))
        np.testing.assert_array_equal(rgb, ref)
        g = ds.geometry(i)
        assert isinstance(g, Geometry) and g.crop == (x0, y0, x1, y1)
        assert g.to_model_box((x0, y0, x1, y1)) == pytest.approx((0, 0, 48, 48))
    full = load_dataset("cub", big_birds, split="test", image_size=48, crop_to_bbox=False)
    w, h = t[full.records[0].image_id]["size"]
    assert full.geometry(0).crop == (0.0, 0.0, float(w), float(h))


def test_parts_follow_crop_and_resize(big_birds):
    """The model-input pixel at a mapped part location shows that part's paint."""
    ds = load_dataset("cub", big_birds, split="trainval", image_size=96)
    ann = read_cub_annotations(big_birds)
    t = {im["image_id"]: im for im in truth(big_birds)["images"]}
    checked = 0
    for i, rec in enumerate(ds.records):
        vals = t[rec.image_id]["values"]
        locs = ann.part_locs[ann.row_of(rec.image_id)]
        rgb = ds.load_rgb(i).astype(float)
        g = ds.geometry(i)
        for part, group, pattern in (("crown", "has_crown_color", None), ("tail", "has_upper_tail_color", "has_tail_pattern")):
            if pattern and vals[pattern] != "solid":
                continue
            p = ann.part_names.index(part)
            (u, v), = g.to_model_points(locs[p, :2][None])
            assert 0 <= u < 96 and 0 <= v < 96
            np.testing.assert_allclose(g.to_original_points([[u, v]])[0], locs[p, :2])
            patch = rgb[int(v) - 1:int(v) + 2, int(u) - 1:int(u) + 2].reshape(-1, 3)
            dist = np.abs(patch - np.array(COLOURS[vals[group]])).max(axis=1).min()
            assert dist < 60, (rec.image_id, part, vals[group])
            checked += 1
    assert checked >= 20


def test_extra_fields_in_attribute_rows_are_tolerated(birds, tmp_path):
    d = copy_set(birds, tmp_path / "b")
    f = d / "CUB_200_2011" / "attributes" / "image_attribute_labels.txt"
    lines = f.read_text().splitlines()
    lines[0] += " 0 17.5"        # the first row too: the parser must not lock onto 5 fields
    lines[100] = lines[100] + " 0"
    f.write_text("\n".join(lines) + "\n")
    a, b = read_cub_annotations(birds), read_cub_annotations(d)
    np.testing.assert_array_equal(a.is_present, b.is_present)
    np.testing.assert_array_equal(a.certainty, b.certainty)


def test_attributes_txt_may_sit_inside(birds, tmp_path):
    d = copy_set(birds, tmp_path / "b")
    shutil.move(d / "attributes.txt", d / "CUB_200_2011" / "attributes.txt")
    assert read_cub_annotations(d / "CUB_200_2011").attribute_names == read_cub_annotations(birds).attribute_names


@pytest.mark.parametrize("name", ["images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt",
                                  "bounding_boxes.txt", "parts/part_locs.txt", "parts/parts.txt",
                                  "attributes/image_attribute_labels.txt", "attributes/certainties.txt",
                                  "attributes/class_attribute_labels_continuous.txt", "../attributes.txt"])
def test_missing_file_is_named(birds, tmp_path, name):
    d = copy_set(birds, tmp_path / "b")
    (d / "CUB_200_2011" / name).unlink()
    with pytest.raises(DataError) as e:
        read_cub_annotations(d)
    assert name.split("/")[-1] in str(e.value)
    assert len(str(e.value).splitlines()) == 1


def _edit(path, fn):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


def test_inconsistent_ids_are_named(birds, tmp_path):
    d = copy_set(birds, tmp_path / "b")
    base = d / "CUB_200_2011"
    _edit(base / "bounding_boxes.txt", lambda ls: [line for line in ls if not line.startswith("5 ")])
    with pytest.raises(DataError, match=r"image id 5 is in images.txt but not in .*bounding_boxes.txt"):
        load_dataset("cub", d)
    shutil.copy(birds / "CUB_200_2011" / "bounding_boxes.txt", base / "bounding_boxes.txt")
    _edit(base / "image_class_labels.txt", lambda ls: ls + ["99 1"])
    with pytest.raises(DataError, match=r"image id 99 is in .*image_class_labels.txt but not in .*images.txt"):
        load_dataset("cub", d)
    shutil.copy(birds / "CUB_200_2011" / "image_class_labels.txt", base / "image_class_labels.txt")
    _edit(base / "image_class_labels.txt", lambda ls: ["1 77"] + ls[1:])
    with pytest.raises(DataError, match=r"class id 77 of image id 1 .*not in .*classes.txt"):
        load_dataset("cub", d)
    shutil.copy(birds / "CUB_200_2011" / "image_class_labels.txt", base / "image_class_labels.txt")
    _edit(base / "parts" / "part_locs.txt", lambda ls: ls + ["1234 1 3.0 4.0 1"])
    with pytest.raises(DataError, match=r"image id 1234 is in .*part_locs.txt but not in .*images.txt"):
        read_cub_annotations(d)
    shutil.copy(birds / "CUB_200_2011" / "parts" / "part_locs.txt", base / "parts" / "part_locs.txt")
    _edit(base / "train_test_split.txt", lambda ls: ls + [ls[3]])
    with pytest.raises(DataError, match=r"image id 4 appears more than once"):
        load_dataset("cub", d)


def test_malformed_values_are_named(birds, tmp_path):
    d = copy_set(birds, tmp_path / "b")
    base = d / "CUB_200_2011"
    _edit(base / "bounding_boxes.txt", lambda ls: ls[:2] + ["3 10.0 abc 5.0 5.0"] + ls[3:])
    with pytest.raises(DataError, match=r"bounding_boxes.txt line 3: .*'y'"):
        load_dataset("cub", d)
    _edit(base / "bounding_boxes.txt", lambda ls: ls[:2] + ["3 10.0 12.0"] + ls[3:])
    with pytest.raises(DataError, match=r"bounding_boxes.txt line 3: missing or non-numeric field 'w'"):
        load_dataset("cub", d)
    shutil.copy(birds / "CUB_200_2011" / "bounding_boxes.txt", base / "bounding_boxes.txt")
    _edit(base / "attributes" / "image_attribute_labels.txt", lambda ls: ls[:1] + ["1 2 1 9 3.0"] + ls[2:])
    with pytest.raises(DataError, match=r"image id 1 attribute id 2: .*certainty_id 9"):
        read_cub_annotations(d)


def test_unreadable_and_missing_images(birds, tmp_path):
    d = copy_set(birds, tmp_path / "b")
    ds = load_dataset("cub", d, split="test", image_size=32)
    victim = ds.records[1].path
    victim.write_bytes(b"this is not a jpeg")
    assert ds[0][0].shape == (3, 32, 32)
    with pytest.raises(DataError, match=f"unreadable image {victim}"):
        ds[1]
    with pytest.raises(DataError, match="unreadable image"):
        ds.load_rgb(1)
    victim.unlink()
    with pytest.raises(DataError, match=r"image id \d+ listed in .*images.txt: file not found"):
        load_dataset("cub", d)


def test_wrong_root_and_arguments(tmp_path, birds):
    with pytest.raises(DataError, match="not found"):
        load_dataset("cub", tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="images.txt"):
        load_dataset("cub", tmp_path / "empty")
    with pytest.raises(DataError, match="unknown data set kind"):
        load_dataset("imagenet", birds)
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("cub", birds, split="dev")


def test_dataloader_workers(birds):
    ds = load_dataset("cub", birds, split="trainval", image_size=32, augment=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    x, y, idx = next(iter(loader))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [r.label for r in ds.records[:4]]
    assert idx.tolist() == [0, 1, 2, 3]


def test_real_world_quirks(birds, tmp_path):
    """Grayscale and CMYK JPEGs (CUB has a few grayscale ones), CRLF line ends, shuffled rows."""
    d = copy_set(birds, tmp_path / "b")
    base = d / "CUB_200_2011"
    ref = load_dataset("cub", birds, split="trainval", image_size=32)
    for name in ("bounding_boxes.txt", "image_class_labels.txt", "parts/part_locs.txt"):
        lines = (base / name).read_text().splitlines()
        lines = lines[::-1]
        (base / name).write_bytes(("\r\n".join(lines) + "\r\n").encode())
    (base / "images.txt").write_bytes((base / "images.txt").read_text().replace("\n", "\r\n").encode())
    ds = load_dataset("cub", d, split="trainval", image_size=32)
    assert [(r.image_id, r.label, r.bbox) for r in ds.records] == [(r.image_id, r.label, r.bbox) for r in ref.records]
    np.testing.assert_array_equal(read_cub_annotations(d).part_locs, read_cub_annotations(birds).part_locs)
    for i, mode in ((0, "L"), (1, "CMYK")):
        with Image.open(ds.records[i].path) as im:
            im.convert(mode).save(ds.records[i].path, format="JPEG")
        x, _, _ = ds[i]
        assert x.shape == (3, 32, 32) and ds.load_rgb(i).shape == (32, 32, 3)
    gray = ds.load_rgb(0)
    assert (gray[..., 0] == gray[..., 1]).all()
