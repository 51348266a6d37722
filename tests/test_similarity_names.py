"""One name per prototype similarity in model configs: ProtoPNet's max activation (ProtoPool
without focal similarity) is "protopnet"; the names it went by elsewhere stay accepted."""
from __future__ import annotations

import pytest

from core.model.config import SIMILARITY_ALIASES, ModelConfig
from core.model.similarity import ACTIVATIONS


@pytest.mark.parametrize("name", sorted(SIMILARITY_ALIASES))
def test_old_names_read_as_the_one_name(name):
    config = ModelConfig.from_dict({"similarity": name})
    assert config.similarity == "protopnet" and config.to_dict()["similarity"] == "protopnet"


def test_canonical_names_are_the_activations():
    assert set(SIMILARITY_ALIASES.values()) <= set(ACTIVATIONS)
    assert not set(SIMILARITY_ALIASES) & set(ACTIVATIONS)
    for name in ACTIVATIONS:
        assert ModelConfig(similarity=name).similarity == name


def test_demo_variant_trains_the_canonical_similarity():
    from core.demo import VARIANTS
    from core.training.demo import demo_overrides

    for v in VARIANTS:
        (override,) = [o for o in demo_overrides(v.model_variant) if o.startswith("model.similarity=")]
        value = override.split("=", 1)[1]
        assert SIMILARITY_ALIASES.get(value, value) == v.similarity
