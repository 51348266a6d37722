"""Prototype models: the model contract (core.model.contract), the distance-based family
(ProtoPool, ProtoPNet) and their building blocks. Build one by name with
`core.architectures.build_model(config)` (the architecture registry)."""
from __future__ import annotations

from dataclasses import is_dataclass

from core.errors import UserFacingError
from core.model.base import ModelOutput, PrototypeModel
from core.model.config import ModelConfig
from core.model.contract import PrototypeArchitecture
from core.model.protopnet import ProtoPNet
from core.model.protopool import ProtoPool


def model_config_of(config) -> ModelConfig:
    """Accepts a ModelConfig, a full training Config (or its dict), or a model-section dict."""
    if isinstance(config, ModelConfig):
        return ModelConfig(**config.to_dict())
    if is_dataclass(config) and hasattr(config, "model"):
        return model_config_of(config.model)
    if isinstance(config, dict):
        section = config.get("model", config) if isinstance(config.get("model"), (dict, ModelConfig)) else config
        if isinstance(section, ModelConfig):
            return ModelConfig(**section.to_dict())
        return ModelConfig.from_dict(dict(section))
    raise UserFacingError(f"build_model: expected a config or dict, got {type(config).__name__}")


__all__ = ["ModelConfig", "ModelOutput", "PrototypeArchitecture", "PrototypeModel", "ProtoPNet", "ProtoPool",
           "model_config_of"]
