"""Checkpoint round trip, atomic writes, and one clear CheckpointError per mismatch."""
import pytest
import torch

from core.errors import CheckpointError
from core.architectures import build_model
from core.training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from core.training.config import Config


def _model(arch="protopool", classes=3):
    torch.manual_seed(0)
    cfg = Config()
    cfg.model.architecture = arch
    cfg.model.backbone, cfg.model.weights, cfg.model.truncate = "resnet18", "none", "layer2"
    cfg.model.num_classes, cfg.model.num_prototypes, cfg.model.num_slots = classes, 5, 2
    cfg.model.prototype_depth, cfg.model.prototypes_per_class = 8, 2
    if arch == "protopnet":
        cfg.model.num_prototypes = None
    return build_model(cfg), cfg


def test_round_trip_restores_weights_and_metadata(tmp_path):
    model, cfg = _model()
    model.eval()
    path = save_checkpoint(tmp_path / "m.pt", model, config=cfg.to_dict(), class_names=["a", "b", "c"],
                           history=[{"phase": "joint", "epoch": 0, "val_accuracy": 0.5}],
                           projection=[None, {"prototype": 1, "box": [0.0, 1.0, 2.0, 3.0]}])
    assert not list(tmp_path.glob("*.tmp"))
    loaded, meta = load_checkpoint(path)
    assert meta["class_names"] == ["a", "b", "c"]
    assert meta["history"][0]["val_accuracy"] == 0.5
    assert meta["projection"][1]["box"] == [0.0, 1.0, 2.0, 3.0]
    assert meta["config"]["model"]["num_classes"] == 3
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    # plain containers only: the raw payload loads with weights_only=True
    assert torch.load(path, weights_only=True)["format"] == "protoproto-checkpoint"


def test_edited_protopnet_reloads_with_its_new_prototype_count(tmp_path):
    model, cfg = _model("protopnet")
    model.keep_prototypes(torch.tensor([0, 2, 3, 5]))
    path = save_checkpoint(tmp_path / "p.pt", model, config=cfg.to_dict(), class_names=["a", "b", "c"])
    loaded, meta = load_checkpoint(path)
    assert loaded.num_prototypes == 4 and meta["config"]["model"]["num_prototypes"] == 4
    assert loaded.prototype_classes() == model.prototype_classes()


def test_mismatches_are_checkpoint_errors(tmp_path):
    model, cfg = _model()
    path = save_checkpoint(tmp_path / "m.pt", model, config=cfg.to_dict(), class_names=["a", "b", "c"])
    with pytest.raises(CheckpointError, match="architecture is 'protopool', expected 'protopnet'"):
        load_checkpoint(path, expect_architecture="protopnet")
    with pytest.raises(CheckpointError, match="has 3 classes, expected 200"):
        load_checkpoint(path, expect_num_classes=200)
    # weights of another shape under the same config
    payload = read_checkpoint(path)
    payload["state_dict"]["prototype_layer.prototypes"] = torch.zeros(7, 8)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="prototype_layer.prototypes"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="field 'format'"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "text.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"format": "protoproto-checkpoint", "obj": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def _real_builds(monkeypatch) -> list:
    """Record every model build that allocates weights (off the meta device)."""
    import core.training.checkpoint as ck

    builds: list = []
    real = ck.build_model

    def spy(cfg):
        model = real(cfg)
        if next(model.parameters()).device.type != "meta":
            builds.append(cfg)
        return model

    monkeypatch.setattr(ck, "build_model", spy)
    return builds


def test_evaluate_refuses_a_bad_checkpoint_before_building_the_model(tmp_path, monkeypatch, capsys):
    from core.cli import main
    from core.data.synthetic import make_synthetic

    model, cfg = _model("protopnet")
    data = make_synthetic(tmp_path / "birds", classes=3, images_per_class=2, size=32)
    config = {"model": cfg.model.to_dict(), "data": {"dataset": "cub", "root": str(data), "image_size": 32}}
    good = save_checkpoint(tmp_path / "good.pt", model, config=config, class_names=["a", "b", "c"])
    payload = read_checkpoint(good)
    payload["state_dict"]["last_layer.weight"] = torch.zeros(3, 7)
    torch.save(payload, tmp_path / "bad.pt")
    builds = _real_builds(monkeypatch)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "bad.pt"), "--quiet"]) == 1
    assert "'last_layer.weight' has shape (3, 7)" in capsys.readouterr().err
    # a missing data set: found before the build too
    assert main(["evaluate", "--checkpoint", str(good), "--data", str(tmp_path / "nowhere"), "--quiet"]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert builds == []
    assert main(["evaluate", "--checkpoint", str(good), "--quiet"]) == 0 and len(builds) == 1
