"""The shipped demo models: small, loadable, the two variants the app needs."""

import pytest

from core.errors import UserFacingError
from core.training.checkpoint import load_checkpoint
from core.training.demo import committed_demo_model, ensure_demo_model


@pytest.mark.parametrize("variant, similarity", [("focal", "focal"), ("protopnet", "protopnet")])
def test_shipped_demo_models(variant, similarity):
    path = committed_demo_model(variant)
    assert path.is_file(), f"{path} missing: see docs/FORMATS.md section 2 to rebuild it"
    assert path.stat().st_size < 20 * 2**20
    model, meta = load_checkpoint(path, expect_architecture="protopool", expect_num_classes=10)
    assert meta["config"]["model"]["similarity"] == similarity
    assert meta["projection"] is not None and any(r is not None for r in meta["projection"])
    val = [h["val_accuracy"] for h in meta["history"] if h["phase"] == "last_layer"]
    assert val and val[-1] > 0.5   # chance is 0.1 (bench/bench_demo.py prints the test figures)
    # trained with the paper's schedule: tau = 1 through warm-up, then 1/sqrt(alpha e) per joint epoch
    taus = [h["tau"] for h in meta["history"] if h["phase"] == "warmup"]
    assert taus and all(t == 1.0 for t in taus)
    joint = [h["tau"] for h in meta["history"] if h["phase"] == "joint"]
    assert joint[0] == 1.0 and joint[-1] == pytest.approx(1e-3, rel=0.1)


def test_ensure_demo_model_copies_the_shipped_model_for_the_same_birds(tmp_path, demo_birds):
    root = demo_birds
    out = ensure_demo_model(root, tmp_path / "ckpt" / "model.pt", variant="focal", progress=False)
    assert out.read_bytes() == committed_demo_model("focal").read_bytes()
    assert ensure_demo_model(root, out, variant="focal", progress=False) == out   # kept when present
    with pytest.raises(UserFacingError, match="unknown"):
        ensure_demo_model(root, tmp_path / "x.pt", variant="prototree")


def test_shipped_model_is_not_taken_for_birds_drawn_otherwise(tmp_path, demo_birds):
    """Same classes and image ids but another bird box (as after a change to the drawing):
    the shipped model does not match, so the demo trains instead of copying it."""
    import shutil

    from core.training.checkpoint import read_checkpoint
    from core.training.demo import _matches

    root = tmp_path / "birds"          # a copy: the shared demo birds stay as drawn
    shutil.copytree(demo_birds, root)
    shipped = committed_demo_model("focal")
    assert _matches(shipped, root)
    image_id = next(r["image_id"] for r in read_checkpoint(shipped)["projection"] if r)
    boxes = root / "CUB_200_2011" / "bounding_boxes.txt"
    lines = boxes.read_text().splitlines()
    i, x, y, w, h = lines[image_id - 1].split()
    assert int(i) == image_id
    lines[image_id - 1] = f"{i} {float(x) + 2} {y} {w} {h}"
    boxes.write_text("\n".join(lines) + "\n")
    assert not _matches(shipped, root)


@pytest.mark.parametrize("variant", ["focal", "protopnet"])
def test_shipped_demo_models_follow_the_tiny_config(variant, tmp_path):
    """The shipped files were trained with configs/tiny-synthetic.yaml as it is now (a
    config change must come with rebuilt models: python -m core.training.demo). The stored
    config is read as the code reads it now: an option added after the files were trained
    counts with the value they were trained with (Config.from_stored: its default, or the
    earlier behaviour where the default changed, e.g. loss.cluster_separation)."""
    from core.training.config import Config
    from core.training.demo import load_config_for

    _, meta = load_checkpoint(committed_demo_model(variant))
    expected = load_config_for(variant, tmp_path, progress=False).to_dict()
    trained = Config.from_stored(meta["config"]).to_dict()
    set_by_the_run = {("model", "num_classes"), ("data", "root")}   # the data decides these
    for section in ("data", "model", "loss", "train"):
        stored = {k: v for k, v in trained[section].items() if (section, k) not in set_by_the_run}
        assert stored == {k: v for k, v in expected[section].items() if (section, k) not in set_by_the_run}, section
