"""Every switch (similarity, assignment, L_orth) and the ProtoPNet architecture trains,
projects, exports and reloads like the full model."""
import pytest
import torch

from core.data import make_synthetic
from core.training.checkpoint import load_checkpoint
from core.training.config import load_config
from core.training.loop import Trainer
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-synthetic.yaml"


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("variants") / "birds", classes=3, images_per_class=8, size=64,
                          seed=1)


@pytest.mark.parametrize("overrides", [
    ["model.similarity=protopnet"],
    ["model.similarity=focal-code"],
    ["model.assignment=softmax"],
    ["model.assignment=softmax-annealed"],
    ["loss.orthogonality=0"],
    ["model.architecture=protopnet", "model.num_prototypes=null", "model.prototypes_per_class=2",
     "model.similarity=protopnet", "loss.orthogonality=0", "train.warmup.lr.slots=null",
     "train.joint.lr.slots=null"],
], ids=["protopnet-sim", "focal-code", "softmax", "softmax-annealed", "no-orth", "protopnet-arch"])
def test_variant_trains_and_exports(birds, tmp_path, overrides):
    cfg = load_config(CONFIG, [f"data.root={birds}", "data.image_size=32", "train.pretrain.epochs=1",
                               "train.warmup.epochs=1", "train.joint.epochs=1", "train.last_layer.epochs=1",
                               "data.val_fraction=0.3", "runtime.progress=false", *overrides])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    path = trainer.run()
    model, meta = load_checkpoint(path, expect_architecture=cfg.model.architecture, expect_num_classes=3)
    assert meta["config"]["model"]["similarity"] == cfg.model.similarity
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [h["phase"] for h in meta["history"]] == ["pretrain", "warmup", "joint", "projection", "last_layer"]
    records = meta["projection"]
    assert len(records) == model.num_prototypes
    assert all((r is None) == (not c) for r, c in zip(records, model.prototype_classes()))
    # the exported model reproduces the trained one
    x = torch.randn(2, 3, 32, 32)
    trainer.net.eval()
    torch.testing.assert_close(model(x).logits, trainer.net(x).logits)
    if cfg.model.architecture == "protopnet":
        assert model.last_layer.weight.shape == (3, 6)
        assert model.prototype_classes() == [[0], [0], [1], [1], [2], [2]]
