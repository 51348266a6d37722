"""Training configuration: plain dataclasses loaded from YAML, overridable from the CLI.

Every number of a run lives here (defaults = the paper's CUB-200-2011 setup, SPEC
section 1) and is stored with the checkpoint as a plain dict. `--set a.b.c=value`
overrides one field; unknown fields and ill-typed values are one clear error naming the
file and the field.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from common.yamlfile import DuplicateKeyError, load_yaml
from core.architectures import ARCHITECTURES, all_groups
from core.errors import UserFacingError
from core.model.config import ModelConfig
from core.model.contract import PhaseConfig
from core.model.losses import LossWeights

GROUPS = all_groups()   # the parameter groups of every registered architecture


@dataclass
class DataConfig:
    dataset: str = "cub"                 # "cub" | "cars" | "folder" (synthetic birds are "cub")
    root: str = "data/CUB_200_2011"
    image_size: int = 224
    crop_to_bbox: bool = True
    val_fraction: float = 0.1            # carved from the official train split
    split_seed: int = 0
    augment: bool = True                 # SPEC section 1 augmentation on the train split
    mixup: bool = True                   # mixup with soft targets
    mixup_alpha: float = 0.0             # 0: the paper's fixed 50:50; a > 0: ratio ~ Beta(a, a) per batch (code: 0.5)
    batch_size: int = 80
    eval_batch_size: int = 100
    num_workers: int = 4
    # passes over the train split per epoch (may be fractional): the paper's epochs are
    # passes over an OFFLINE-augmented set (ProtoPNet's img_aug.py: 30 copies per image),
    # ours augment online, so an epoch of ours must see as many images as the paper's for
    # warm-up, joint, tau, lr steps, patience and last layer to have the paper's number of
    # optimisation steps (`python -m core train --dry-run` prints both plans)
    epoch_repeats: float = 1.0


@dataclass
class TauConfig:
    """tau(e) = 1/sqrt(alpha e) over joint epochs e; tau = start at e = 0, end from end_epoch.

    alpha: null derives alpha = 1 / (end^2 end_epoch) so that a short run can set its
    own end_epoch (e.g. the same fraction of its joint phase as the paper's 30 epochs).
    """

    alpha: float = 3.4e4
    end_epoch: float = 30.0
    start: float = 1.0
    end: float = 1e-3


def _warmup() -> PhaseConfig:
    return PhaseConfig(epochs=10, lr={"add_on": 1.5e-3, "prototypes": 1.5e-3, "slots": 1.5e-3})


def _joint() -> PhaseConfig:
    return PhaseConfig(epochs=100, lr={"backbone": 5e-5, "add_on": 1.5e-3, "prototypes": 1.5e-3, "slots": 1.5e-3},
                       weight_decay={"backbone": 1e-3, "add_on": 1e-3}, lr_step=5, lr_gamma=0.5, patience=12)


def _last_layer() -> PhaseConfig:
    return PhaseConfig(epochs=15, lr={"last_layer": 1e-4})


def _pretrain() -> PhaseConfig:
    return PhaseConfig(epochs=0, lr={"backbone": 1e-3})


@dataclass
class TrainConfig:
    # optional backbone pretraining with a throw-away linear head (plain cross-entropy),
    # a stand-in for ImageNet weights when none are available; off (0 epochs) by default
    pretrain: PhaseConfig = field(default_factory=_pretrain)
    # pooling of the pretraining head: "avg" (a plain classifier) or "max" (global max
    # pooling: the class evidence must sit in one cell, so the features become local
    # part detectors, which prototypes need)
    pretrain_pool: str = "avg"
    # weight of a local reconstruction term in pretraining (0: off): a 1x1 head on every
    # feature cell predicts the mean colours of the cell's own 2 x 2 sub-squares of the
    # input, so that cells describe their own content (as ImageNet features do) and not
    # only the class; the head is thrown away with the linear one
    pretrain_local: float = 0.0
    # where the prototypes start: "uniform" (the paper's U[0, 1]) or "kmeans++" (seeded
    # on feature cells of training images at the start of warm-up; see Trainer)
    prototype_init: str = "uniform"
    # k-means++ only, after pretraining: seed from this share of each image's cells, those
    # that the pretraining head scores highest for the image's own class (1.0: all cells).
    # Two thirds of a crop to the box are background, which D^2 sampling picks as readily
    # as the bird; background prototypes find no part and are not named
    prototype_init_evidence: float = 1.0
    warmup: PhaseConfig = field(default_factory=_warmup)
    joint: PhaseConfig = field(default_factory=_joint)
    project: bool = True
    last_layer: PhaseConfig = field(default_factory=_last_layer)
    tau: TauConfig = field(default_factory=TauConfig)
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    projection_batch_size: int = 64
    # settings of phases other than the ones above, by phase name, for architectures that
    # declare their own (core.model.contract.TrainPhase; e.g. PIP-Net's self-supervised
    # pretraining): {name: {epochs: ..., lr: {group: ...}, ...}}
    phases: dict = field(default_factory=dict)
    # the paper setting whose plan (steps, images seen, tau) `--dry-run` and training print
    # beside ours: "" (none) | protopool-cub | protopool-cars | protopnet-cub (core.training.plan)
    paper: str = ""


@dataclass
class RuntimeConfig:
    device: str = "auto"                 # "auto" | "cpu" | "cuda" | "cuda:N"
    amp: str = "auto"                    # "auto" (bf16 on CUDA) | "bf16" | "none"
    channels_last: str = "auto"          # "auto" (on CUDA) | "on" | "off"
    seed: int = 0
    threads: int = 0                     # CPU threads for torch (0 = torch's default)
    progress: bool = True
    tensorboard: bool = True             # only if the tensorboard package is installed


@dataclass
class Config:
    name: str = "protopool-cub"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_stored(cls, data: dict, source: str = "checkpoint") -> Config:
        """A config stored with a checkpoint: an option it lacks counts with the value the
        file was trained with (STORED_BEFORE_OPTION), else with its default."""
        data = copy.deepcopy(data)
        for (section, key), value in STORED_BEFORE_OPTION.items():
            if isinstance(data.get(section), dict) and key not in data[section]:
                data[section][key] = value
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> Config:
        """Fields missing from `data` keep the defaults (nested sections merge field by field)."""
        if not isinstance(data, dict):
            raise UserFacingError(f"{source}: top level must be a mapping, got {type(data).__name__}")
        return _build(cls, _deep_merge(cls().to_dict(), data), source, "")


# Options added after checkpoints were written whose default differs from what those
# files were trained with: a stored config that lacks one had this value (issue 25 made
# the authors' detached top-K cluster/separation the default; earlier runs used the
# differentiable form).
STORED_BEFORE_OPTION = {("loss", "cluster_separation"): "differentiable"}

_REPLACED = {"lr", "weight_decay"}  # a phase's groups are given as a whole, not merged with defaults


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in _REPLACED:
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Bring a YAML/CLI value to the type of the field's default (None allowed anywhere)."""
    if value is None or default is None:
        if isinstance(value, str) and value.lower() in {"null", "none", "~"}:
            return None
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "on", "off"}:
                return value.lower() in {"true", "yes", "on"}
            if isinstance(value, bool):
                return value
            raise ValueError
        if isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(default, str):
            return str(value)
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ValueError
            out = {}
            for key, item in value.items():
                if item is None:  # `lr.slots: null` removes a group
                    continue
                if key not in GROUPS:
                    raise UserFacingError(f"{where}.{key}: unknown parameter group; known: {', '.join(GROUPS)}")
                out[key] = _coerce(item, 0.0, f"{where}.{key}")
            return out
        if isinstance(default, list):
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return [_coerce(v, default[0], where) if default else v for v in value]
    except (TypeError, ValueError):
        raise UserFacingError(f"{where}: {value!r} is not a valid {type(default).__name__}") from None
    return value


def _build(cls, data: dict, source: str, prefix: str):
    if not isinstance(data, dict):
        raise UserFacingError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping, got {data!r}")
    template = cls()
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{source}: {prefix}{key}"
        if key not in known:
            raise UserFacingError(f"{where}: unknown field; known: {', '.join(sorted(known))}")
        default = getattr(template, key)
        if is_dataclass(default):
            kwargs[key] = _build(type(default), value, source, f"{prefix}{key}.")
        elif cls is TrainConfig and key == "phases":
            if not isinstance(value, dict):
                raise UserFacingError(f"{where}: must be a mapping of phase name to phase settings, got {value!r}")
            kwargs[key] = {str(name): _build(PhaseConfig, settings, source, f"{prefix}{key}.{name}.")
                           for name, settings in value.items()}
        elif cls is ModelConfig and key in {"truncate", "num_prototypes", "num_classes"}:
            kwargs[key] = None if value is None else _coerce(value, "" if key == "truncate" else 0, where)
        else:
            kwargs[key] = _coerce(value, default, where)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.joint.epochs=3' -> (['train', 'joint', 'epochs'], 3)."""
    if "=" not in text:
        raise UserFacingError(f"--set {text!r}: expected KEY=VALUE, e.g. train.joint.epochs=3")
    key, raw = text.split("=", 1)
    try:
        value = load_yaml(raw, f"--set {text!r}") if raw.strip() else ""
    except DuplicateKeyError as exc:
        raise UserFacingError(str(exc)) from None
    except yaml.YAMLError:
        value = raw
    return [k for k in key.strip().split(".") if k], value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    data = copy.deepcopy(data)
    for text in overrides or []:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            if not isinstance(node.get(k, {}), dict):
                raise UserFacingError(f"--set {text!r}: {k} is not a section")
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (None = defaults), apply `--set` overrides, validate."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise UserFacingError(f"--config: {path} does not exist")
        try:
            data = load_yaml(path.read_text(), str(path)) or {}   # a key given twice is an error
        except DuplicateKeyError as exc:
            raise UserFacingError(str(exc)) from None
        except yaml.YAMLError as exc:
            raise UserFacingError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserFacingError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    # defaults first, then the file, then --set (so --set train.joint.lr.backbone=... keeps the other groups)
    data = apply_overrides(_deep_merge(Config().to_dict(), data), overrides or [])
    config = Config.from_dict(data, source)
    validate(config, source)
    return config


def validate(config: Config, source: str = "config") -> None:
    if config.train.pretrain.epochs and set(config.train.pretrain.lr) != {"backbone"}:
        raise UserFacingError(f"{source}: train.pretrain.lr must name only the backbone group")
    for phase in ("pretrain", "warmup", "joint", "last_layer"):
        p = getattr(config.train, phase)
        if p.epochs < 0:
            raise UserFacingError(f"{source}: train.{phase}.epochs must be >= 0, got {p.epochs}")
        if p.epochs and not p.lr:
            raise UserFacingError(f"{source}: train.{phase}.lr names no parameter group to train")
    config.loss.check(f"{source}: loss")
    if config.train.paper:
        from core.training.plan import PAPERS

        if config.train.paper not in PAPERS:
            raise UserFacingError(f"{source}: train.paper: unknown paper setting {config.train.paper!r}; "
                                  f"valid: {', '.join(PAPERS)} (or empty)")
    entry = ARCHITECTURES.get(config.model.architecture)   # an unknown one: an error when the model is built
    if entry is not None:
        if entry.check_config is not None:
            entry.check_config(config, source)
        declared = [p.name for p in entry.phases(config)]
        for name in config.train.phases:
            if name not in declared:
                raise UserFacingError(f"{source}: train.phases.{name}: {config.model.architecture} has no phase "
                                      f"{name!r}; its phases: {', '.join(declared)}")
    if not (isinstance(config.data.epoch_repeats, (int, float)) and config.data.epoch_repeats > 0):
        raise UserFacingError(f"{source}: data.epoch_repeats must be a number > 0, got {config.data.epoch_repeats!r}")
    if config.train.prototype_init not in ("uniform", "kmeans++"):
        raise UserFacingError(f"{source}: train.prototype_init must be uniform or kmeans++, "
                              f"got {config.train.prototype_init!r}")
    share = config.train.prototype_init_evidence
    if not (isinstance(share, (int, float)) and not isinstance(share, bool) and 0 < share <= 1):
        raise UserFacingError(f"{source}: train.prototype_init_evidence must be a share in (0, 1], got {share!r}")
    if share < 1 and (config.train.prototype_init != "kmeans++" or config.train.pretrain.epochs == 0):
        raise UserFacingError(f"{source}: train.prototype_init_evidence {share} needs train.prototype_init: kmeans++ "
                              f"and train.pretrain.epochs > 0 (the pretraining head scores the cells); set it to 1.0")
    if not (isinstance(config.train.pretrain_local, (int, float)) and config.train.pretrain_local >= 0):
        raise UserFacingError(f"{source}: train.pretrain_local must be a number >= 0, got {config.train.pretrain_local!r}")
    if config.train.pretrain_pool not in ("avg", "max"):
        raise UserFacingError(f"{source}: train.pretrain_pool must be avg or max, got {config.train.pretrain_pool!r}")
    if config.data.mixup_alpha < 0:
        raise UserFacingError(f"{source}: data.mixup_alpha must be >= 0, got {config.data.mixup_alpha}")
    if config.train.tau.end_epoch <= 0:
        raise UserFacingError(f"{source}: train.tau.end_epoch must be > 0, got {config.train.tau.end_epoch}")
    if config.data.batch_size < 1:
        raise UserFacingError(f"{source}: data.batch_size must be >= 1, got {config.data.batch_size}")
    if config.runtime.amp not in {"auto", "bf16", "none"}:
        raise UserFacingError(f"{source}: runtime.amp must be auto, bf16 or none, got {config.runtime.amp!r}")
