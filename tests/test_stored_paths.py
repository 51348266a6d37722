"""Paths stored in artifacts (FORMATS.md §0): a copied workspace, opened from a third
current folder, finds its own checkpoint, data and atlas files; a path found nowhere is
one error line naming it and the fix."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import app_helpers
from core.atlas.format import AtlasWriter, empty_manifest, read_atlas
from core.errors import DataError, FormatError
from common.paths import candidates, resolve_stored, stored_path
from core.training.data import checkpoint_dataset, data_root


def test_stored_path_is_relative_inside_the_workspace_and_absolute_outside(tmp_path):
    atlas = tmp_path / "ws" / "atlases" / "a"
    assert stored_path(tmp_path / "ws" / "checkpoints" / "m.pt", atlas) == "../../checkpoints/m.pt"
    assert stored_path(tmp_path / "ws" / "atlases" / "a" / "x.csv", atlas) == "x.csv"
    outside = tmp_path / "elsewhere" / "m.pt"
    assert stored_path(outside, atlas) == str(outside)
    assert stored_path("/m.pt", "/atlases/a") == "/m.pt"  # a workspace at the filesystem root does not count


def test_stored_path_reads_a_relative_target_from_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "ws" / "runs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "ws")
    assert stored_path("runs/m.pt", tmp_path / "ws" / "atlases" / "a") == "../../runs/m.pt"


def test_resolve_stored_looks_from_the_artifact_folder_upwards(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    (ws / "data" / "birds").mkdir(parents=True)
    (ws / "checkpoints" / "m").mkdir(parents=True)
    (tmp_path / "cwd" / "data" / "birds").mkdir(parents=True)   # a decoy in the current folder
    monkeypatch.chdir(tmp_path / "cwd")
    folder = ws / "checkpoints" / "m"
    assert resolve_stored("data/birds", folder, is_dir=True) == ws / "data" / "birds"
    assert resolve_stored("data/birds", folder, is_dir=False) is None     # a folder, not a file
    assert resolve_stored("../../data/birds", folder) == ws / "data" / "birds"
    assert candidates("../../data/birds", folder) == [ws / "data" / "birds"]  # relative to the artifact: one place
    assert resolve_stored("../data/birds", folder) is None                   # ... and not searched upwards
    assert resolve_stored(str(ws / "data" / "birds"), tmp_path) == ws / "data" / "birds"
    assert resolve_stored("nowhere", folder) is None and resolve_stored(None, folder) is None


def test_checkpoint_data_root_found_from_the_checkpoint_in_a_copied_workspace(tmp_path, monkeypatch):
    """The bug of issue 11: a checkpoint records `data/synthetic-birds` relative to where it
    was trained; copied elsewhere and read from a third folder, it still finds its data."""
    copy = app_helpers.workspace(tmp_path / "copied" / "ws")
    (tmp_path / "third").mkdir()
    monkeypatch.chdir(tmp_path / "third")
    checkpoint = copy / "checkpoints" / "protopool" / "model.pt"
    from core.training.checkpoint import read_checkpoint

    meta = {"config": read_checkpoint(checkpoint)["config"]}
    assert meta["config"]["data"]["root"] == "data/synthetic-birds"
    ds = checkpoint_dataset(meta, "test", checkpoint=checkpoint)
    assert Path(ds.records[0].path).is_relative_to(copy / "data" / "synthetic-birds")
    assert data_root(meta, checkpoint=checkpoint) == copy / "data" / "synthetic-birds"
    ds = checkpoint_dataset(meta, "test", source=str(checkpoint))   # what every command passes
    assert Path(ds.records[0].path).is_relative_to(copy)

    shutil.rmtree(copy / "data")
    with pytest.raises(DataError) as err:
        checkpoint_dataset(meta, "test", checkpoint=checkpoint, source=str(checkpoint))
    line = str(err.value)
    assert "\n" not in line and "'data/synthetic-birds'" not in line  # the value as recorded, then the fix
    assert "data/synthetic-birds not found in" in line and "config data.root" in line and "--data ROOT" in line
    with pytest.raises(DataError, match="is relative and the checkpoint's folder is unknown"):
        checkpoint_dataset(meta, "test")


def test_evaluate_command_from_a_third_folder(tmp_path, monkeypatch, capsys):
    from core import cli

    copy = app_helpers.workspace(tmp_path / "copied" / "ws")
    (tmp_path / "third").mkdir()
    monkeypatch.chdir(tmp_path / "third")
    checkpoint = os.path.relpath(copy / "checkpoints" / "protopool" / "model.pt")   # as a user types it
    assert cli.main(["evaluate", "--checkpoint", checkpoint, "--no-progress", "--device", "cpu"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def _atlas_with_sources(out: Path, checkpoint, data) -> Path:
    doc = empty_manifest("a", "ProtoPool", "birds", ["x", "y"])
    doc["created_from"] = {"checkpoint": str(checkpoint), "data_root": str(data), "seed": 0}
    with AtlasWriter(out) as writer:
        writer.commit(doc)
    return out


def test_atlas_records_its_sources_relative_and_finds_them_in_a_copy(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    (ws / "checkpoints" / "m").mkdir(parents=True)
    (ws / "checkpoints" / "m" / "model.pt").write_bytes(b"x")
    (ws / "data" / "birds").mkdir(parents=True)
    outside = tmp_path / "shared" / "big.pt"
    outside.parent.mkdir()
    outside.write_bytes(b"y")
    monkeypatch.chdir(ws)   # the command line's paths are the current folder's
    _atlas_with_sources(ws / "atlases" / "a", "checkpoints/m/model.pt", "data/birds")
    _atlas_with_sources(ws / "atlases" / "b", outside, "data/birds")
    created = json.loads((ws / "atlases" / "a" / "atlas.json").read_text())["created_from"]
    assert created == {"checkpoint": "../../checkpoints/m/model.pt", "data_root": "../../data/birds", "seed": 0}
    assert json.loads((ws / "atlases" / "b" / "atlas.json").read_text())["created_from"]["checkpoint"] == str(outside)

    copy = tmp_path / "moved" / "ws2"
    shutil.copytree(ws, copy)
    shutil.rmtree(ws)
    (tmp_path / "third").mkdir()
    monkeypatch.chdir(tmp_path / "third")
    atlas = read_atlas(copy / "atlases" / "a")
    assert atlas.created_from_path("checkpoint") == copy / "checkpoints" / "m" / "model.pt"
    assert atlas.created_from_path("data_root") == copy / "data" / "birds"
    assert read_atlas(copy / "atlases" / "b").created_from_path("checkpoint") == outside  # absolute: as is

    (copy / "checkpoints" / "m" / "model.pt").unlink()
    with pytest.raises(FormatError) as err:
        atlas.created_from_path("checkpoint")
    line = str(err.value)
    assert "\n" not in line and "atlas.json: field 'created_from.checkpoint'" in line
    assert "../../checkpoints/m/model.pt not found" in line and "rebuild the atlas" in line


def test_atlas_made_from_an_older_cwd_relative_path_is_found_upwards(tmp_path):
    """Atlases written before this rule recorded the path as typed (relative to the folder
    the command ran in, usually the workspace or repository root): found from above."""
    ws = tmp_path / "ws"
    (ws / "runs" / "a").mkdir(parents=True)
    (ws / "runs" / "a" / "model.pt").write_bytes(b"x")
    out = _atlas_with_sources(ws / "atlases" / "a", ws / "runs" / "a" / "model.pt", ws)
    doc = json.loads((out / "atlas.json").read_text())
    doc["created_from"]["checkpoint"] = "runs/a/model.pt"
    (out / "atlas.json").write_text(json.dumps(doc))
    assert read_atlas(out).created_from_path("checkpoint") == ws / "runs" / "a" / "model.pt"
