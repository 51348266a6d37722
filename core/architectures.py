"""The architecture registry: `model.architecture` -> its `Architecture` (core.model.contract).

A new architecture is one folder under core/ (its network, losses and phases) plus one
line here; docs/INTERFACES.md ("Adding an architecture") walks through it. Everything
else (the trainer, checkpoints, explanations) goes through the registry and the contract.
"""
from __future__ import annotations

from core.errors import UserFacingError
from core.model import model_config_of
from core.model.base import PrototypeModel
from core.model.contract import Architecture, PrototypeArchitecture
from core.model.phases import check_protopool, protopnet_phases, protopool_phases
from core.model.protopnet import ProtoPNet
from core.model.protopool import ProtoPool
from core.pipnet.model import PIPNet
from core.pipnet.train_phases import check_pipnet, pipnet_phases

ARCHITECTURES: dict[str, Architecture] = {
    "protopool": Architecture("protopool", ProtoPool, protopool_phases, check_protopool, PrototypeModel.GROUPS,
                              "ProtoPool"),
    "protopnet": Architecture("protopnet", ProtoPNet, protopnet_phases, None, PrototypeModel.GROUPS, "ProtoPNet"),
    "pipnet": Architecture("pipnet", PIPNet, pipnet_phases, check_pipnet, PIPNet.GROUPS, "PIP-Net"),
}


def architecture(name: str) -> Architecture:
    """The registry entry of `name`; an unknown name is one error line naming the known ones."""
    entry = ARCHITECTURES.get(name)
    if entry is None:
        raise UserFacingError(f"model.architecture: unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return entry


def all_groups() -> tuple[str, ...]:
    """Every parameter group name some architecture has (the config's lr keys)."""
    seen: dict[str, None] = {}
    for entry in ARCHITECTURES.values():
        seen.update(dict.fromkeys(entry.groups))
    return tuple(seen)


def build_model(config) -> PrototypeArchitecture:
    """Build the architecture named by config.model.architecture (num_classes must be set)."""
    cfg = model_config_of(config)
    if cfg.num_classes is None or int(cfg.num_classes) < 1:
        raise UserFacingError(f"model.num_classes: must be a positive integer, got {cfg.num_classes}")
    return architecture(cfg.architecture).build(cfg)
