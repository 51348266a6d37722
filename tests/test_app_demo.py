"""`app.demo.ensure_demo`: idempotent, resumable, deterministic (the models are the
tests' tiny random ones, put where the demo expects its checkpoints)."""
from __future__ import annotations

import json
import time

import app_helpers
from app.__main__ import main as app_main
from app.demo import MARKER, STUDIES, VARIANTS, ensure_demo


def _snapshot(home):
    return {str(p.relative_to(home)): p.stat().st_mtime_ns for p in home.rglob("*") if p.is_file()}


def test_demo_workspace_layout(tmp_path):
    home = app_helpers.workspace(tmp_path / "ws")
    marker = json.loads((home / MARKER).read_text())
    assert marker["format"] == "protoproto-demo" and marker["studies"] == list(STUDIES)
    assert marker["data"] == "data/synthetic-birds"   # relative to the workspace: a copy stays right
    assert marker["checkpoints"] == {v.key: f"checkpoints/{v.key}/model.pt" for v in VARIANTS}
    for v in VARIANTS:
        atlas = json.loads((home / "atlases" / v.atlas / "atlas.json").read_text())
        assert atlas["method"] == v.method
        assert atlas["model"]["model"]["similarity"] == v.similarity
        assert atlas["heatmaps"] and all(p["nearest"] for p in atlas["prototypes"])
        assert any(p["naming"] for p in atlas["prototypes"])  # named from the synthetic attributes
    for study in STUDIES:
        manifest = json.loads((home / "studies" / study / "study.json").read_text())
        assert manifest["id"] == study and (home / "specs" / f"{study}.yaml").is_file()
    assert json.loads((home / "studies" / "demo-saliency" / "study.json").read_text())["kind"] == "saliency"
    assert json.loads((home / "studies" / "demo-consistency" / "study.json").read_text())["kind"] == "consistency"
    hidden = [p for p in home.rglob(".*")]
    assert hidden == [], hidden  # no temporary leftovers


def test_complete_demo_is_not_rebuilt(tmp_path):
    home = app_helpers.workspace(tmp_path / "ws")
    before = _snapshot(home)
    t = time.perf_counter()
    assert app_main(["demo", "--home", str(home), "--quiet"]) == 0
    assert time.perf_counter() - t < 1.0
    assert _snapshot(home) == before


def test_missing_parts_are_rebuilt_identically(tmp_path):
    home = app_helpers.workspace(tmp_path / "ws")
    study = home / "studies" / "demo-consistency"
    original = {p.name: p.read_bytes() for p in study.glob("*.json")}
    atlas_before = _snapshot(home / "atlases")
    import shutil

    shutil.rmtree(study)
    (home / MARKER).unlink()
    ensure_demo(home, progress=False)
    assert {p.name: p.read_bytes() for p in study.glob("*.json")} == original  # same seed, same study
    assert _snapshot(home / "atlases") == atlas_before                         # kept, not rebuilt
    assert (home / MARKER).is_file()


def test_build_prints_expectation_and_each_stage(tmp_path, capsys):
    """What a user waits on: the expected time first, then every stage with its number
    and how long it took (here the studies are missing, the rest is kept)."""
    import shutil

    home = app_helpers.workspace(tmp_path / "ws")
    shutil.rmtree(home / "studies" / "demo-saliency")
    (home / MARKER).unlink()
    assert app_main(["demo", "--home", str(home)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"Building the demo workspace in {home}: 6 stages, about 1 minute on 2 free cores")
    stages = [line for line in err if line.startswith("[")]
    assert [line.split("]")[0] + "]" for line in stages] == [f"[{k}/6]" for k in range(1, 7) for _ in (0, 1)]
    assert all(" done in " in line and " s so far)" in line for line in stages[1::2])
    assert stages[-1].startswith("[6/6] studies (demo-saliency, demo-consistency): done in ")
