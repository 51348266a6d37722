"""One name per prototype similarity (common.names.SIMILARITIES): ProtoPNet's max activation
(ProtoPool without focal similarity) is "protopnet". Older spellings in checkpoints,
configs and atlases are read as the one name and never written; the shipped checkpoints
(trained before) load under it."""
from __future__ import annotations

import json

import pytest

from common.names import OLD_SIMILARITY_NAMES, SIMILARITIES, canonical_similarity
from core.model.config import ModelConfig
from core.model.similarity import ACTIVATIONS


@pytest.mark.parametrize("name", sorted(OLD_SIMILARITY_NAMES))
def test_old_names_read_as_the_one_name(name):
    config = ModelConfig.from_dict({"similarity": name})
    assert config.similarity == "protopnet" and config.to_dict()["similarity"] == "protopnet"


def test_canonical_names_are_the_activations():
    assert tuple(ACTIVATIONS) == SIMILARITIES
    assert set(OLD_SIMILARITY_NAMES.values()) <= set(SIMILARITIES)
    assert not set(OLD_SIMILARITY_NAMES) & set(SIMILARITIES)
    for name in SIMILARITIES:
        assert ModelConfig(similarity=name).similarity == name == canonical_similarity(name)


def test_demo_variants_are_the_canonical_similarities():
    from core.demo import VARIANTS
    from core.training.demo import VARIANTS as MODEL_VARIANTS
    from core.training.demo import committed_demo_model, demo_overrides, load_config_for

    assert set(MODEL_VARIANTS) <= set(SIMILARITIES)
    for v in VARIANTS:
        assert v.similarity in SIMILARITIES
        assert demo_overrides(v.similarity) == [f"model.similarity={v.similarity}"]
    # the old variant name still finds the shipped file, and a new config names the one spelling
    assert committed_demo_model("protopnet-sim") == committed_demo_model("protopnet")
    config = load_config_for("protopnet-sim", "birds", progress=False)
    assert config.model.similarity == "protopnet" and config.name == "demo-protopnet"


@pytest.mark.parametrize("variant", ["focal", "protopnet"])
def test_shipped_checkpoints_load_under_the_one_name(variant, tmp_path):
    """The shipped files (not retrained) load; a checkpoint whose stored config spells the
    similarity the old way loads as the one name, and saving it again writes that name."""
    import torch

    from core.training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
    from core.training.demo import committed_demo_model

    shipped = committed_demo_model(variant)
    model, meta = load_checkpoint(shipped)
    assert meta["config"]["model"]["similarity"] == variant
    payload = read_checkpoint(shipped)
    if variant == "protopnet":
        payload["config"]["model"]["similarity"] = "protopnet-sim"    # as an older writer might have
        old = tmp_path / "old.pt"
        torch.save(payload, old)
        again, old_meta = load_checkpoint(old)
        assert again.config.similarity == "protopnet" and old_meta["config"]["model"]["similarity"] == "protopnet"
        for a, b in zip(again.state_dict().values(), model.state_dict().values()):
            assert torch.equal(a, b)
        save_checkpoint(tmp_path / "new.pt", again, config=old_meta["config"], class_names=old_meta["class_names"])
        assert read_checkpoint(tmp_path / "new.pt")["config"]["model"]["similarity"] == "protopnet"


def test_an_atlas_with_an_old_spelling_reads_as_the_one_name(tmp_path):
    from common.atlas import read_atlas
    from study_helpers import make_atlas

    root = make_atlas(tmp_path / "at", "at", "M", n_images=6, n_prototypes=4, n_pairs=1)
    doc = json.loads((root / "atlas.json").read_text())
    doc["model"] = {"model": {"similarity": "nofocal"}}
    (root / "atlas.json").write_text(json.dumps(doc))
    assert read_atlas(root).similarity == "protopnet"
    doc["model"] = None                                   # an imported method: no model
    (root / "atlas.json").write_text(json.dumps(doc))
    assert read_atlas(root).similarity is None
