"""import-heatmaps (FORMATS.md §4): real PNG/.npy files in, a valid atlas out; bad input changes nothing."""
import csv
import json

import cv2
import numpy as np
import pytest

from core.atlas.format import read_atlas
from core.atlas.import_heatmaps import import_heatmaps
from core.atlas import import_cli
from core.errors import FormatError
from core.explain import overlay as ov


def _write_png(path, rgb):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]) if rgb.ndim == 3 else rgb)


@pytest.fixture()
def external(tmp_path):
    """A ProtoTree-like output folder: 2 images, a raw .npy map, a grey PNG map, a colour overlay."""
    rng = np.random.default_rng(0)
    src = tmp_path / "prototree"
    src.mkdir()
    img_a = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    img_b = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
    _write_png(src / "a.png", img_a)
    cv2.imwrite(str(src / "b.jpg"), img_b[..., ::-1])
    m = np.zeros((60, 80), np.float32)
    m[10:20, 50:70] = 1.0  # the hot spot
    np.save(src / "a_map.npy", m)
    grey = np.zeros((60, 80), np.uint8)
    grey[40:55, 5:15] = 255
    _write_png(src / "a_grey.png", grey)
    colour = rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)
    _write_png(src / "b_overlay.png", colour)
    rows = [{"image": "a.png", "heatmap": "a_map.npy", "label": "1", "prototype": "4"},
            {"image": "a.png", "heatmap": "a_grey.png", "label": "1", "prototype": ""},
            {"image": "b.jpg", "heatmap": "b_overlay.png", "label": "0", "prototype": ""}]
    with (src / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "heatmap", "label", "prototype"])
        w.writeheader()
        w.writerows(rows)
    return src, img_a, colour, m


def test_import_builds_valid_atlas(external, tmp_path):
    src, img_a, colour, m = external
    out = import_heatmaps(src / "manifest.csv", tmp_path / "atlases" / "tree", method="ProtoTree", dataset="cub")
    atlas = read_atlas(out)
    assert atlas.method == "ProtoTree" and atlas.doc["prototypes"] == [] and atlas.num_classes == 2
    h0, h1, h2 = atlas.heatmaps
    assert h0["image_id"] == h1["image_id"] == 1 and h2["image_id"] == 2
    assert h0["prototype"] == 4 and h1["prototype"] is None and h2["label"] == 0
    # raw map kept, overlay made with our pipeline, box on the hot spot
    assert np.array_equal(np.load(out / h0["map"]), m)
    x0, y0, x1, y1 = h0["box"]
    assert 45 <= x0 and x1 <= 75 and 5 <= y0 and y1 <= 25
    overlay = cv2.imread(str(out / h0["overlay"]))[..., ::-1]
    assert np.abs(overlay.astype(int) - ov.overlay(img_a, m).astype(int)).max() <= 1
    # grey PNG treated as a map, colour PNG kept as the overlay
    assert h1["map"] is not None and h1["box"][0] < 15 and h1["box"][1] >= 35
    assert h2["map"] is None and h2["box"] is None
    assert np.array_equal(cv2.imread(str(out / h2["overlay"]))[..., ::-1], colour)
    assert np.array_equal(cv2.imread(str(out / h0["image"]))[..., ::-1], img_a)
    assert not [p for p in (tmp_path / "atlases").iterdir() if p.name.startswith(".")]
    from study.atlas_reader import read_atlas as study_read_atlas
    assert [h["id"] for h in study_read_atlas(out).heatmaps] == ["h00000", "h00001", "h00002"]


def _rewrite(src, rows):
    with (src / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "heatmap", "label"])
        w.writeheader()
        w.writerows(rows)


@pytest.mark.parametrize("row, message", [
    ({"image": "a.png", "heatmap": "missing.npy", "label": "1"}, "row 3: column 'heatmap': file not found"),
    ({"image": "nope.png", "heatmap": "a_map.npy", "label": "1"}, "row 3: column 'image': file not found"),
    ({"image": "b.jpg", "heatmap": "a_map.npy", "label": "1"}, "has size 80x60 but its image is 40x50"),
    ({"image": "b.jpg", "heatmap": "a_grey.png", "label": "1"}, "has size 80x60 but its image is 40x50"),
    ({"image": "a.png", "heatmap": "a_map.npy", "label": "x"}, "column 'label'"),
])
def test_bad_rows_fail_and_write_nothing(external, tmp_path, row, message):
    src = external[0]
    _rewrite(src, [{"image": "a.png", "heatmap": "a_map.npy", "label": "1"}, row])
    out_dir = tmp_path / "atlases"
    with pytest.raises(FormatError, match=message):
        import_heatmaps(src / "manifest.csv", out_dir / "tree", method="ProtoTree")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_grid_maps_option(external, tmp_path):
    src = external[0]
    np.save(src / "grid.npy", np.eye(7, dtype=np.float32))
    _rewrite(src, [{"image": "a.png", "heatmap": "grid.npy", "label": "0"}])
    with pytest.raises(FormatError, match="--grid-maps"):
        import_heatmaps(src / "manifest.csv", tmp_path / "t1", method="X")
    atlas = read_atlas(import_heatmaps(src / "manifest.csv", tmp_path / "t2", method="X", grid_maps=True))
    assert np.load(tmp_path / "t2" / atlas.heatmaps[0]["map"]).shape == (7, 7)


def test_cli_and_existing_atlas_untouched(external, tmp_path, capsys):
    src = external[0]
    out = tmp_path / "tree"
    assert import_cli.main(["--manifest", str(src / "manifest.csv"), "--out", str(out), "--method", "ProtoTree"]) == 0
    assert "imported 3 heatmaps" in capsys.readouterr().out
    before = (out / "atlas.json").read_text()
    with pytest.raises(FormatError, match="already exists"):
        import_cli.main(["--manifest", str(src / "manifest.csv"), "--out", str(out), "--method", "Other"])
    (src / "b_overlay.png").unlink()
    with pytest.raises(FormatError, match="file not found"):
        import_cli.main(["--manifest", str(src / "manifest.csv"), "--out", str(out), "--method", "Other",
                         "--overwrite"])
    assert (out / "atlas.json").read_text() == before
    assert json.loads(before)["method"] == "ProtoTree"


def test_jet_coloured_heatmap_is_inverted_to_a_map(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    levels = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (40, 1))
    levels[5:15, 30:45] = 1.0
    _write_png(tmp_path / "img.png", image)
    _write_png(tmp_path / "heat.png", ov.jet_rgb(levels))
    (tmp_path / "m.csv").write_text("image,heatmap,label\nimg.png,heat.png,0\n")
    atlas = read_atlas(import_heatmaps(tmp_path / "m.csv", tmp_path / "out", method="ProtoTree", png_kind="jet"))
    h = atlas.heatmaps[0]
    recovered = np.load(tmp_path / "out" / h["map"])
    assert np.abs(recovered - levels).max() <= 0.02
    with pytest.raises(FormatError, match="not a JET-coloured"):
        (tmp_path / "m.csv").write_text("image,heatmap\nimg.png,grey.png\n")
        _write_png(tmp_path / "grey.png", np.zeros((40, 50), np.uint8))
        import_heatmaps(tmp_path / "m.csv", tmp_path / "out2", method="X", png_kind="jet")
