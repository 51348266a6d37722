"""Image-folder and Stanford Cars readers (Cars from a tiny devkit written with savemat)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io
from PIL import Image

from core.data import load_dataset
from core.data.cub import read_cub_table
from core.errors import DataError
from data_fixtures import synthetic_set


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return synthetic_set(tmp_path_factory)


@pytest.fixture()
def folder(birds, tmp_path):
    """The synthetic images as ROOT/<class>/<file>, some re-encoded as PNG, plus noise files."""
    t = read_cub_table(birds)
    root = tmp_path / "folder"
    for i, p in enumerate(t.paths):
        d = root / t.class_names[t.labels[i]].split(".", 1)[1]
        d.mkdir(parents=True, exist_ok=True)
        if i % 3 == 0:
            with Image.open(p) as im:
                im.save(d / (p.stem + ".PNG"))
        else:
            shutil.copy(p, d / p.name)
    (root / "notes.txt").write_text("not a class")
    (root / t.class_names[0].split(".", 1)[1] / "readme.md").write_text("skip me")
    (root / ".hidden").mkdir()
    return root


def test_folder_splits(folder):
    tr = load_dataset("folder", folder, split="trainval", image_size=32)
    te = load_dataset("folder", folder, split="test", image_size=32, test_fraction=0.34)
    te0 = load_dataset("folder", folder, split="test", image_size=32)
    assert tr.class_names == sorted(tr.class_names) and tr.num_classes == 4
    assert len(tr) + len(te0) == 24
    assert {r.image_id for r in tr.records}.isdisjoint({r.image_id for r in te0.records})
    assert sorted(r.label for r in te0.records) == [0, 1, 2, 3]        # round(0.2 * 6) = 1 per class
    assert sorted(r.label for r in te.records) == [0, 0, 1, 1, 2, 2, 3, 3]
    again = load_dataset("folder", folder, split="test", image_size=32)
    assert [r.path for r in again.records] == [r.path for r in te0.records]
    moved = load_dataset("folder", folder, split="test", image_size=32, split_seed=3)
    other = [load_dataset("folder", folder, split="test", image_size=32, split_seed=s).records for s in range(1, 8)]
    assert any({r.path for r in o} != {r.path for r in te0.records} for o in other)
    assert len(moved) == len(te0)
    x, y, i = tr[0]
    assert x.shape == (3, 32, 32) and tr.records[0].bbox is None
    assert tr.geometry(0).crop[:2] == (0.0, 0.0)
    assert all(r.path.suffix.lower() in (".jpg", ".png") for r in tr.records)


def test_folder_train_test_layout(folder, tmp_path):
    root = tmp_path / "tt"
    for part in ("train", "test"):
        shutil.copytree(folder, root / part, ignore=shutil.ignore_patterns(".hidden", "notes.txt"))
    tr = load_dataset("folder", root, split="trainval", image_size=32)
    te = load_dataset("folder", root, split="test", image_size=32)
    assert len(tr) == len(te) == 24
    assert all("/train/" in str(r.path) for r in tr.records) and all("/test/" in str(r.path) for r in te.records)


def test_folder_bad_input(folder, tmp_path):
    empty = folder / "Zzz_empty"
    empty.mkdir()
    with pytest.raises(DataError, match="Zzz_empty holds no images"):
        load_dataset("folder", folder)
    empty.rmdir()
    with pytest.raises(DataError, match="not found"):
        load_dataset("folder", tmp_path / "missing")
    ds = load_dataset("folder", folder, split="trainval", image_size=32)
    ds.records[2].path.write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=f"unreadable image {ds.records[2].path}"):
        ds[2]


def _annos(records):
    dt = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    arr = np.zeros((1, len(records)), dtype=dt)
    for i, r in enumerate(records):
        # as in the real devkit: 1x1 uint16 boxes, 1x1 uint8 class, a 1-element string array
        arr[0, i] = tuple(np.array([[v]], dtype=np.uint16) for v in r[:4]) + (
            np.array([[r[4]]], dtype=np.uint8), np.array([r[5]]))
    return {"annotations": arr}


@pytest.fixture()
def cars(birds, tmp_path):
    """A torchvision-layout Stanford Cars folder built from the synthetic images."""
    t = read_cub_table(birds)
    base = tmp_path / "cars" / "stanford_cars"
    for sub in ("devkit", "cars_train", "cars_test"):
        (base / sub).mkdir(parents=True)
    names = np.array([n.split(".", 1)[1].replace("_", " ") for n in t.class_names], dtype=object)
    scipy.io.savemat(base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    rows = {True: [], False: []}
    for i, p in enumerate(t.paths):
        train = bool(t.is_train[i])
        fname = f"{i + 1:05d}.jpg"
        shutil.copy(p, base / ("cars_train" if train else "cars_test") / fname)
        x0, y0, x1, y1 = (int(v) for v in t.bboxes[i])
        rows[train].append((x0 + 1, y0 + 1, x1, y1, int(t.labels[i]) + 1, fname))
    scipy.io.savemat(base / "devkit" / "cars_train_annos.mat", _annos(rows[True]))
    scipy.io.savemat(base / "cars_test_annos_withlabels.mat", _annos(rows[False]))
    return tmp_path / "cars", t, rows


def test_cars_reader(cars):
    root, t, rows = cars
    tv = load_dataset("cars", root, split="trainval", image_size=40)
    te = load_dataset("cars", root / "stanford_cars", split="test", image_size=40)
    assert tv.class_names[0] == t.class_names[0].split(".", 1)[1].replace("_", " ")
    assert len(tv) == len(rows[True]) == 12 and len(te) == 12
    assert [r.image_id for r in tv.records] == list(range(1, 13))
    assert [r.image_id for r in te.records] == list(range(13, 25))
    r0 = rows[True][0]
    assert tv.records[0].bbox == (r0[0] - 1.0, r0[1] - 1.0, float(r0[2]), float(r0[3]))
    assert [r.label for r in tv.records] == [row[4] - 1 for row in rows[True]]
    assert tv.geometry(0).crop == tv.records[0].bbox
    x, y, _ = te[3]
    assert x.shape == (3, 40, 40) and y == rows[False][3][4] - 1
    tr = load_dataset("cars", root, split="train", image_size=40, val_fraction=0.34)
    va = load_dataset("cars", root, split="val", image_size=40, val_fraction=0.34)
    assert len(tr) + len(va) == 12 and sorted(r.label for r in va.records) == [0, 1, 2, 3]


def test_cars_bad_input(cars, tmp_path):
    root, t, rows = cars
    base = root / "stanford_cars"
    (base / "cars_test" / rows[False][0][5]).unlink()
    with pytest.raises(DataError, match=f"image listed in .*cars_test_annos_withlabels.mat not found: .*{rows[False][0][5]}"):
        load_dataset("cars", root, split="test")
    bad = list(rows[True])
    bad[2] = bad[2][:4] + (99,) + bad[2][5:]
    scipy.io.savemat(base / "devkit" / "cars_train_annos.mat", _annos(bad))
    with pytest.raises(DataError, match=r"annotation 3 .* has class 99, but cars_meta.mat lists 4 classes"):
        load_dataset("cars", root)
    (base / "devkit" / "cars_meta.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read MATLAB file .*cars_meta.mat"):
        load_dataset("cars", root)
    (base / "devkit" / "cars_meta.mat").unlink()
    with pytest.raises(DataError, match="missing file: .*cars_meta.mat"):
        load_dataset("cars", root)
    with pytest.raises(DataError, match="stanford_cars"):
        load_dataset("cars", tmp_path)
