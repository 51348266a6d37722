"""import-heatmaps on hostile files: size limits read from the header before decoding (one
error line, no OpenCV traceback, no gigabytes), undecodable pixels, paths leading out."""
import csv
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.atlas.format import read_atlas
from core.atlas.import_heatmaps import import_heatmaps
from core.errors import FormatError
from image_bombs import jpeg_huge_header, png_bomb, png_huge_header, png_undecodable

ROOT = Path(__file__).resolve().parent.parent


def _manifest(folder: Path, rows: list[dict]) -> Path:
    path = folder / "manifest.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "heatmap"])
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture()
def src(tmp_path):
    folder = tmp_path / "method"
    folder.mkdir()
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(folder / "a.png"), rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    np.save(folder / "a.npy", rng.random((40, 50)).astype(np.float32))
    return folder


@pytest.mark.parametrize("column", ["image", "heatmap"])
@pytest.mark.parametrize("make, message", [
    (png_bomb, "10000x10000 is more than 40 megapixels"),
    (png_huge_header, "100000x100000 is more than 40 megapixels"),
    (jpeg_huge_header, "60000x60000 is more than 40 megapixels"),
    (png_undecodable, "its pixel data does not decode"),
    (lambda: b"GIF89a" + bytes(100), "not a PNG or JPEG image"),
])
def test_hostile_images_are_one_line_before_decoding(src, tmp_path, column, make, message):
    (src / "bad.png").write_bytes(make())
    row = {"image": "a.png", "heatmap": "a.npy", column: "bad.png"}
    manifest = _manifest(src, [row])
    tracemalloc.start()
    try:
        with pytest.raises(FormatError) as info:
            import_heatmaps(manifest, tmp_path / "atlas", method="X")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(info.value)
    assert message in text and f"row 2: column '{column}'" in text and "\n" not in text
    assert peak < 50e6           # numpy buffers are traced: nothing near the 100 MB the bomb decodes to
    assert not (tmp_path / "atlas").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".atlas.")]


def test_npy_shape_is_checked_before_loading(src, tmp_path):
    np.lib.format.open_memmap(src / "big.npy", mode="w+", dtype=np.uint8, shape=(7000, 7000)).flush()  # sparse
    manifest = _manifest(src, [{"image": "a.png", "heatmap": "big.npy"}])
    with pytest.raises(FormatError, match=r"shape \(7000, 7000\) has more than 40 million values"):
        import_heatmaps(manifest, tmp_path / "atlas", method="X", grid_maps=True)


@pytest.mark.parametrize("cell", ["../outside/o.png", "OUTSIDE_ABS", "link/o.png"])
def test_paths_leading_out_of_the_manifest_folder_need_the_flag(src, tmp_path, cell):
    outside = tmp_path / "outside"
    outside.mkdir()
    assert cv2.imwrite(str(outside / "o.png"), np.zeros((40, 50, 3), np.uint8))
    (src / "link").symlink_to(outside, target_is_directory=True)
    cell = str(outside / "o.png") if cell == "OUTSIDE_ABS" else cell
    manifest = _manifest(src, [{"image": cell, "heatmap": "a.npy"}])
    with pytest.raises(FormatError, match="row 2: column 'image': .* leads outside the manifest's folder"):
        import_heatmaps(manifest, tmp_path / "atlas", method="X")
    assert not (tmp_path / "atlas").exists()
    atlas = read_atlas(import_heatmaps(manifest, tmp_path / "atlas", method="X", allow_outside=True))
    assert len(atlas.heatmaps) == 1


def test_cli_prints_one_line_for_a_bomb_from_another_folder(src, tmp_path):
    (src / "bomb.png").write_bytes(png_huge_header())
    manifest = _manifest(src, [{"image": "a.png", "heatmap": "bomb.png"}])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "core", "import-heatmaps", "--manifest", str(manifest),
                           "--out", "atlas", "--method", "X"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "100000x100000 is more than 40 megapixels" in proc.stderr
    manifest.write_text("image,heatmap\n../../etc/passwd,a.npy\n")
    proc = subprocess.run([sys.executable, "-m", "core", "import-heatmaps", "--manifest", str(manifest),
                           "--out", "atlas", "--method", "X"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "leads outside the manifest's folder" in proc.stderr
    assert not (elsewhere / "atlas").exists()
