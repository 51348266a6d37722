"""Prototype models: `build_model(config)` through an architecture registry."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import is_dataclass

from core.errors import UserFacingError
from core.model.base import ModelOutput, PrototypeModel
from core.model.config import ModelConfig
from core.model.protopnet import ProtoPNet
from core.model.protopool import ProtoPool

ARCHITECTURES: dict[str, Callable[[ModelConfig], PrototypeModel]] = {
    "protopool": ProtoPool,
    "protopnet": ProtoPNet,
}


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


def build_model(config) -> PrototypeModel:
    """Build the architecture named by config.model.architecture (num_classes must be set)."""
    cfg = model_config_of(config)
    if cfg.num_classes is None or int(cfg.num_classes) < 1:
        raise UserFacingError(f"model.num_classes: must be a positive integer, got {cfg.num_classes}")
    builder = ARCHITECTURES.get(cfg.architecture)
    if builder is None:
        raise UserFacingError(
            f"model.architecture: unknown architecture {cfg.architecture!r}; known: {', '.join(ARCHITECTURES)}")
    return builder(cfg)


__all__ = ["ARCHITECTURES", "ModelConfig", "ModelOutput", "PrototypeModel", "ProtoPNet", "ProtoPool",
           "build_model", "model_config_of"]
