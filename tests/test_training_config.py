"""YAML configs, --set overrides and their error messages."""
from pathlib import Path

import pytest

from core.errors import UserFacingError
from core.training.config import Config, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_defaults_are_the_papers_cub_setup():
    c = Config()
    assert (c.model.num_prototypes, c.model.num_slots, c.model.prototype_depth) == (202, 10, 256)
    assert (c.loss.cross_entropy, c.loss.cluster, c.loss.separation, c.loss.orthogonality, c.loss.l1) == \
           (1.0, 0.8, -0.08, 1.0, 1e-4)
    assert c.train.warmup.epochs == 10 and set(c.train.warmup.lr) == {"add_on", "prototypes", "slots"}
    assert c.train.joint.lr["backbone"] == 5e-5 and c.train.joint.lr["slots"] == 1.5e-3
    assert c.train.joint.lr_step == 5 and c.train.joint.lr_gamma == 0.5 and c.train.joint.patience == 12
    assert c.train.last_layer.lr == {"last_layer": 1e-4} and c.train.last_layer.epochs == 15
    assert c.data.batch_size == 80 and c.data.image_size == 224 and c.train.tau.alpha == 3.4e4


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    c = load_config(path)
    from core.architectures import ARCHITECTURES
    assert c.model.architecture in ARCHITECTURES
    assert Config.from_dict(c.to_dict()) == c   # JSON-able round trip


def test_overrides_merge_into_sections():
    c = load_config(None, ["train.joint.epochs=3", "train.joint.lr.backbone=1e-4", "loss.orthogonality=0",
                           "model.similarity=protopnet", "model.truncate=layer3", "data.augment=false"])
    assert c.train.joint.epochs == 3 and c.train.joint.lr["backbone"] == 1e-4
    assert c.train.joint.lr["slots"] == 1.5e-3  # other groups keep their defaults
    assert c.loss.orthogonality == 0.0 and c.model.similarity == "protopnet" and c.model.truncate == "layer3"
    assert c.data.augment is False


@pytest.mark.parametrize("override, message", [
    ("train.joint.epochs=many", "train.joint.epochs: 'many' is not a valid int"),
    ("train.joint.epoch=3", "train.joint.epoch: unknown field"),
    ("train.joint.lr.wings=0.1", "train.joint.lr.wings: unknown parameter group"),
    ("data.batch_size=0", "data.batch_size must be >= 1"),
    ("nonsense", "expected KEY=VALUE"),
])
def test_bad_overrides_are_one_clear_line(override, message):
    with pytest.raises(UserFacingError) as info:
        load_config(None, [override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UserFacingError, match="bad.yaml"):
        load_config(bad)
    with pytest.raises(UserFacingError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
