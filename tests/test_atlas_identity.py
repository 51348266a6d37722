"""The image-set identity an atlas records (core/atlas/identity.py) and `python -m core
image-set`, which adds it to an atlas built before it existed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import app_helpers
from core.atlas.identity import data_set_identity
from core.data.synthetic import make_synthetic

ROOT = Path(__file__).resolve().parent.parent


def test_identity_follows_the_images_not_the_folder(tmp_path):
    a = make_synthetic(tmp_path / "a", classes=3, images_per_class=4, size=48, seed=1)
    first = data_set_identity("cub", a)
    assert first["classes"] == 3 and first["images"] == 12 and len(first["sha256"]) == 64
    shutil.copytree(tmp_path / "a", tmp_path / "moved")                 # the same images elsewhere
    assert data_set_identity("cub", tmp_path / "moved") == first
    assert data_set_identity("cub", a, val_fraction=0.3, seed=5) == first   # however it is split
    other = make_synthetic(tmp_path / "b", classes=4, images_per_class=3, size=48, seed=1)
    assert data_set_identity("cub", other)["sha256"] != first["sha256"]
    redrawn = make_synthetic(tmp_path / "c", classes=3, images_per_class=4, size=48, seed=2)  # same names
    assert data_set_identity("cub", redrawn)["sha256"] != first["sha256"]


def test_image_set_command_restores_the_identity_of_an_old_atlas(tmp_path):
    home = app_helpers.workspace(tmp_path / "ws")
    manifest = home / "atlases" / "protopool-birds" / "atlas.json"
    doc = json.loads(manifest.read_text())
    built = doc["dataset"]["image_set"]
    assert built["classes"] == len(doc["dataset"]["class_names"]) and built["images"] > 0
    other = json.loads((home / "atlases" / "protopool-nofocal-birds" / "atlas.json").read_text())
    assert other["dataset"]["image_set"] == built                     # both demo atlases: the same birds
    del doc["dataset"]["image_set"]
    manifest.write_text(json.dumps(doc, indent=1))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "core", "image-set", str(manifest.parent)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(manifest.read_text())["dataset"]["image_set"] == built
    assert f"image set {built['sha256'][:12]}" in run.stdout
    wrong = make_synthetic(tmp_path / "wrong", classes=2, images_per_class=3, size=48, seed=0)
    run = subprocess.run([sys.executable, "-m", "core", "image-set", str(manifest.parent), "--force",
                          "--data-root", str(wrong), "--kind", "cub"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and len(run.stderr.strip().splitlines()) == 1
    assert "not the data set of this atlas" in run.stderr
    assert json.loads(manifest.read_text())["dataset"]["image_set"] == built      # unchanged


def test_imported_heatmaps_record_the_identity_of_the_data_they_explain(tmp_path):
    """The paper's design pairs an imported method (ProtoTree's heatmaps) with a trained
    one: `import-heatmaps --data-root` records the same identity a built atlas has."""
    import numpy as np

    home = app_helpers.workspace(tmp_path / "ws")
    built = json.loads((home / "atlases" / "protopool-birds" / "atlas.json").read_text())
    birds = Path(built["created_from"]["data_root"])
    if not birds.is_absolute():
        birds = (home / "atlases" / "protopool-birds" / birds).resolve()
    images = sorted(birds.rglob("*.jpg"))[:2]
    assert images
    folder = tmp_path / "external"
    folder.mkdir()
    rows = ["image,heatmap"]
    for i, image in enumerate(images):
        shutil.copy(image, folder / f"img{i}.jpg")
        np.save(folder / f"map{i}.npy", np.random.default_rng(i).random((7, 7)).astype(np.float32))
        rows.append(f"img{i}.jpg,map{i}.npy")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "core", "import-heatmaps", "--manifest",
                               str(folder / "manifest.csv"), "--method", "Other", "--grid-maps", *extra],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    done = run("--out", "imported", "--data-root", str(birds))
    assert done.returncode == 0, done.stderr
    imported = json.loads((tmp_path / "imported" / "atlas.json").read_text())
    assert imported["dataset"]["image_set"] == built["dataset"]["image_set"]
    wrong = make_synthetic(tmp_path / "wrong", classes=2, images_per_class=3, size=48, seed=0)
    (tmp_path / "two.txt").write_text("a\nb\nc\n")
    bad = run("--out", "bad", "--data-root", str(wrong), "--class-names", str(tmp_path / "two.txt"))
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "not the data set of these heatmaps" in bad.stderr
    assert not (tmp_path / "bad").exists()
