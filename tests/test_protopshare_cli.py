"""End to end on synthetic birds: `python -m core merge-prune`, projection of shared
prototypes, and consistency-study pairs written into an atlas."""
import json

import numpy as np
import pytest
import torch

from core.atlas.format import AtlasWriter, empty_manifest, read_atlas, write_pairs
from core.cli import main as core_main
from core.data import load_dataset
from core.data.synthetic import make_synthetic
from core.errors import FormatError
from core.architectures import build_model
from core.protopshare.pairs import prototype_pairs
from core.training.checkpoint import load_checkpoint, save_checkpoint
from core.training.config import Config
from core.training.evaluate import evaluate

DATA = dict(dataset="cub", image_size=32, crop_to_bbox=True, val_fraction=0.3, split_seed=0, augment=False,
            mixup=False, batch_size=8, eval_batch_size=32, num_workers=0)


def _config(root, architecture="protopnet"):
    model = dict(architecture=architecture, backbone="resnet18", weights="none", truncate="layer2",
                 prototype_depth=8, num_prototypes=None if architecture == "protopnet" else 6,
                 prototypes_per_class=3, num_slots=2, num_classes=3,
                 similarity="protopnet" if architecture == "protopnet" else "focal")
    return Config.from_dict({"name": "tiny", "data": dict(DATA, root=str(root)), "model": model,
                             "runtime": {"device": "cpu", "amp": "none"}})


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    root = make_synthetic(tmp_path_factory.mktemp("protopshare") / "birds", classes=3, images_per_class=12,
                          size=64, seed=0)
    torch.manual_seed(0)
    ckpt = root.parent / "protopnet.pt"
    config = _config(root)
    model = build_model(config)
    save_checkpoint(ckpt, model, config=config.to_dict(), class_names=["a", "b", "c"], history=[{"phase": "x"}])
    return root, ckpt


def test_merge_prune_command_end_to_end(birds, tmp_path, capsys):
    root, ckpt = birds
    out = tmp_path / "merged.pt"
    rc = core_main(["merge-prune", "--checkpoint", str(ckpt), "--data", str(root), "--zeta", "25", "--target", "4",
                    "--iterations", "3", "--out", str(out), "--device", "cpu", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "9 -> 4 prototypes (target)" in printed
    model, meta = load_checkpoint(out)
    assert model.num_prototypes == 4 and meta["config"]["model"]["num_prototypes"] == 4
    rows = [h for h in meta["history"] if h["phase"] == "merge_prune"]
    assert meta["history"][0] == {"phase": "x"}                         # earlier history is kept
    steps = [r for r in rows if "summary" not in r]
    assert [r["num_prototypes"] for r in steps] == [9, 7, 5, 4]        # 25% of 9 -> 2, of 7 -> 2, capped at 4
    summary = rows[-1]
    assert summary["summary"] is True and summary["stopped"] == "target" and len(summary["kept"]) == 4
    merged_ids = {r for s in steps for r, _ in s["merges"]}
    assert merged_ids.isdisjoint(summary["kept"]) and len(merged_ids) == 5
    # recorded accuracy is the reloaded model's accuracy on the validation split
    val = load_dataset("cub", root, split="val", **{k: DATA[k] for k in ("image_size", "crop_to_bbox")},
                       val_fraction=0.3, seed=0)
    measured = evaluate(model, val, amp="none")["accuracy"]
    assert measured == pytest.approx(steps[-1]["val_accuracy"], abs=1e-6)
    assert summary["val_accuracy"] == pytest.approx(measured, abs=1e-6)
    # classes are OR-ed along the recorded merges (original prototype j serves class j // 3)
    expected = {j: {j // 3} for j in range(9)}
    for s in steps:
        for removed, kept in s["merges"]:
            expected[kept] |= expected.pop(removed)
    assert [sorted(expected[j]) for j in summary["kept"]] == model.prototype_classes()
    assert sorted({c for cs in model.prototype_classes() for c in cs}) == [0, 1, 2]


def test_projection_of_a_shared_prototype_uses_all_its_classes(birds, tmp_path):
    root, ckpt = birds
    args = ["merge-prune", "--checkpoint", str(ckpt), "--zeta", "50", "--target", "3", "--iterations", "0",
            "--device", "cpu", "--no-progress"]
    assert core_main(args + ["--out", str(tmp_path / "plain.pt")]) == 0
    assert core_main(args + ["--out", str(tmp_path / "projected.pt"), "--project"]) == 0
    model, meta = load_checkpoint(tmp_path / "plain.pt")
    projected, pmeta = load_checkpoint(tmp_path / "projected.pt")
    classes = model.prototype_classes()
    assert projected.prototype_classes() == classes               # same merges: the run is deterministic
    assert [r for r in meta["history"] if r.get("step") == "projection"] == []
    assert [r["step"] for r in pmeta["history"] if r.get("step") == "projection"] == ["projection"]
    shared = [j for j, cs in enumerate(classes) if len(cs) > 1]
    assert shared
    train = load_dataset("cub", root, split="train", image_size=32, val_fraction=0.3, seed=0)
    with torch.no_grad():
        dist = torch.cat([model.patch_distances(x).flatten(2).amin(2) for x, _, _ in
                          torch.utils.data.DataLoader(train, batch_size=32)])            # (N, M) before projection
    labels = torch.tensor([r.label for r in train.records])
    records = pmeta["projection"]
    for j in shared:
        allowed = torch.isin(labels, torch.tensor(classes[j]))
        assert records[j]["classes"] == classes[j] and records[j]["label"] in classes[j]
        assert records[j]["distance"] == pytest.approx(float(dist[allowed, j].min()), rel=1e-4, abs=1e-5)
    with torch.no_grad():                                          # the prototype now is that patch
        i, (row, col) = records[shared[0]]["index"], records[shared[0]]["cell"]
        patch = projected.features(train[i][0][None])[0, :, row, col]
    torch.testing.assert_close(projected.prototypes[shared[0]], patch, rtol=1e-5, atol=1e-5)


def test_merge_prune_bad_input_is_one_line_and_writes_nothing(birds, tmp_path, capsys):
    root, ckpt = birds
    out = tmp_path / "never.pt"
    rc = core_main(["merge-prune", "--checkpoint", str(ckpt), "--zeta", "10", "--target", "9", "--out", str(out),
                    "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: --target") and len(err.strip().splitlines()) == 1
    assert not out.exists()
    rc = core_main(["merge-prune", "--checkpoint", str(ckpt), "--zeta", "0", "--target", "3", "--out", str(out)])
    assert rc == 1 and "--zeta" in capsys.readouterr().err
    pool_ckpt = tmp_path / "pool.pt"
    config = _config(root, "protopool")
    save_checkpoint(pool_ckpt, build_model(config), config=config.to_dict(), class_names=["a", "b", "c"])
    rc = core_main(["merge-prune", "--checkpoint", str(pool_ckpt), "--target", "3", "--out", str(out)])
    assert rc == 1 and "ProtoPNet" in capsys.readouterr().err and not out.exists()


def _atlas_with_nearest(path, ids_with_nearest, n_protos):
    manifest = empty_manifest("t", "ProtoPNet", "birds", ["a", "b", "c"])
    with AtlasWriter(path) as w:
        rel = w.add_image(1, np.zeros((8, 8, 3), np.uint8))
        for pid in range(n_protos):
            nearest = ([{"image_id": 1, "image": rel, "box": [0, 0, 4, 4], "distance": 0.1}]
                       if pid in ids_with_nearest else [])
            manifest["prototypes"].append({"id": pid, "classes": [0], "source": None, "nearest": nearest,
                                           "name": None, "naming": None})
        w.commit(manifest)
    return path


@pytest.mark.parametrize("architecture", ["protopnet", "protopool"])
def test_pairs_for_any_model_are_written_into_an_atlas(birds, tmp_path, architecture):
    root, _ = birds
    torch.manual_seed(0)
    model = build_model(_config(root, architecture)).eval()
    train = load_dataset("cub", root, split="train", image_size=32, val_fraction=0.3, seed=0)
    m = model.num_prototypes
    eligible = list(range(m - 1))                            # the last prototype has no nearest patches
    pairs = prototype_pairs(model, torch.utils.data.DataLoader(train, batch_size=16), n_pairs=3, device="cpu",
                            eligible=eligible)
    for source in ("data_dependent", "euclidean"):
        assert 1 <= len(pairs[source]) <= 3
        for p in pairs[source]:
            assert p["a"] < p["b"] < m - 1 and p["score"] > 0
    atlas = _atlas_with_nearest(tmp_path / "atlas", set(eligible), m)
    write_pairs(atlas, pairs)
    assert read_atlas(atlas).pairs == pairs
    bad = {"data_dependent": [{"a": 0, "b": m - 1, "score": 1.0}], "euclidean": []}
    with pytest.raises(FormatError, match="no nearest patches"):
        write_pairs(atlas, bad)
    assert json.loads((atlas / "atlas.json").read_text())["pairs"] == pairs   # unchanged on error
