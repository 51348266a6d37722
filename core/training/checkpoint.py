"""Checkpoints: one file, plain containers and tensors only, written atomically.

Loading uses torch.load(weights_only=True), so a checkpoint can never run code; this is
why optimizer/RNG states are stored as tensors, numbers, strings, lists and dicts only.
A checkpoint from another architecture, class count or project is a CheckpointError.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from core.architectures import build_model
from core.errors import CheckpointError, UserFacingError
from core.model import model_config_of
from core.model.contract import PrototypeArchitecture
from core.training.distributed import unwrap

FORMAT = "protoproto-checkpoint"
VERSION = 1


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write to `path.tmp` then rename, so a killed run never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _model_of(model) -> PrototypeArchitecture:
    return unwrap(model)  # the model inside DistributedDataParallel


def save_checkpoint(path: str | Path, model, *, config: dict, class_names: list[str],
                    history: list[dict] | None = None, projection: list | None = None,
                    training: dict | None = None) -> Path:
    """Save weights + config (its `model` section taken from the model itself, so an edited
    model, e.g. after pruning, reloads with its new prototype count) + metadata.

    `training` (optional) holds resume state: phase, epoch, optimizer/scheduler state
    dicts, RNG states, early-stopping bookkeeping.
    """
    net = _model_of(model)
    config = dict(config)
    config["model"] = net.config.to_dict()
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": net.config.architecture,
        "num_classes": net.num_classes,
        "num_prototypes": net.num_prototypes,
        "config": config,
        "class_names": [str(c) for c in class_names],
        "history": list(history or []),
        "projection": projection,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "training": training,
    }
    path = Path(path)
    atomic_torch_save(payload, path)
    return path


_MAGIC = [(b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"\x93NUMPY", "a NumPy .npy array"),
          (b"\x1f\x8b", "a gzip file (unpack it first)"), (b"\x89HDF", "an HDF5 file (e.g. Keras weights)"),
          (b"%PDF", "a PDF document")]


def describe_file(path: Path, error: str) -> str:
    """What a file that torch.load refused is, in words (from its first bytes)."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        import zipfile
        try:
            names = zipfile.ZipFile(path).namelist()
        except (zipfile.BadZipFile, OSError):
            return "a damaged or truncated zip archive"
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return f"a PyTorch archive that weights-only loading refuses ({error})"
        return f"a zip archive that is not a PyTorch checkpoint (no data.pkl among its {len(names)} entries)"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return f"a Python pickle that weights-only loading refuses ({error})"
    if len(head) >= 9 and int.from_bytes(head[:8], "little") < 100_000_000 and head[8:9] == b"{":
        return "a safetensors file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[:exc.start].decode("utf-8") if exc.start > len(head) - 4 else None
    if text is not None and "\x00" not in text:
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        return f"a text file (starting {first!r})"
    return f"a binary file of unknown type (first bytes {head[:8].hex(' ')})"


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, mmap: bool = False) -> dict:
    """The raw payload, validated for format and version (`mmap`: tensors mapped, not read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        import zipfile
        mmap = mmap and zipfile.is_zipfile(path)   # (torch maps only zip archives; others are refused below)
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - unreadable / unsafe pickles are one line
        from core.pickle_messages import IMPORT_HINT, foreign_message, refused_global, short_reason
        text = str(exc).strip() or type(exc).__name__
        name = refused_global(text)
        message = foreign_message(path, name)
        if message:
            raise CheckpointError(message) from None
        why = f"it asks for {name!r}; nothing was run" if name else short_reason(text)
        raise CheckpointError(f"{path}: not a loadable checkpoint: {describe_file(path, why)}; expected a "
                              f"checkpoint saved by this toolkit (format {FORMAT!r}); {IMPORT_HINT}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        official = isinstance(payload, dict) and ("model_state_dict" in payload or any(
            str(k).endswith(("prototype_vectors", "proto_presence")) for k in payload))
        hint = (f"; it looks like a state dict of the authors' ProtoPool/ProtoPNet/ProtoPShare code: convert it "
                f"with `python -m core import-checkpoint --official {path} --kind ... --out NEW.pt`" if official else "")
        raise CheckpointError(f"{path}: field 'format' is {found!r}, expected {FORMAT!r}{hint}")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: field 'version' is {payload.get('version')!r}, expected {VERSION}")
    for key in ("config", "class_names", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path}: field {key!r} is missing")
    return payload


def check_checkpoint(path: str | Path, *, expect_architecture: str | None = None,
                     expect_num_classes: int | None = None) -> dict:
    """Everything that can refuse a checkpoint, before any weight is read or model built.

    The file's tensors are memory-mapped, not read; the model its config describes is
    built on the meta device (shapes only, no memory) and the state dict's keys and
    shapes are compared with it. Returns the meta dict of `load_checkpoint` (config,
    class_names, history, projection, training), so a command can check its data set too
    before it builds the model. A bad checkpoint is one CheckpointError line.
    """
    payload = read_checkpoint(path, "cpu", mmap=True)
    arch = payload.get("architecture")
    n_classes = payload.get("num_classes")
    if expect_architecture is not None and arch != expect_architecture:
        raise CheckpointError(f"{path}: architecture is {arch!r}, expected {expect_architecture!r}")
    if expect_num_classes is not None and n_classes != expect_num_classes:
        raise CheckpointError(f"{path}: has {n_classes} classes, expected {expect_num_classes}")
    if len(payload["class_names"]) != n_classes:
        raise CheckpointError(f"{path}: 'class_names' has {len(payload['class_names'])} names for {n_classes} classes")
    config = payload["config"]
    model_cfg = _model_config(path, config)
    with torch.device("meta"):
        try:
            skeleton = build_model(model_cfg)
        except UserFacingError as exc:
            raise CheckpointError(f"{path}: field 'config.model' does not build a model ({exc})") from None
    check_state(skeleton, payload["state_dict"], str(path))
    meta = {k: payload.get(k) for k in ("config", "class_names", "history", "projection", "training")}
    meta["config"] = dict(config, model=skeleton.config.to_dict())
    return meta


def _model_config(path, config):
    try:
        model_cfg = model_config_of(config)
    except UserFacingError as exc:
        raise CheckpointError(f"{path}: field 'config.model' does not build a model ({exc})") from None
    model_cfg.weights = "none"  # the state dict carries the backbone weights: never download
    return model_cfg


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    expect_architecture: str | None = None, expect_num_classes: int | None = None,
                    ) -> tuple[PrototypeArchitecture, dict]:
    """Rebuild the model from the stored config and load its weights (eval mode).

    Returns (model, meta) with meta keys config, class_names, history, projection,
    training. Architecture / class-count mismatches are a CheckpointError, found by
    `check_checkpoint` before the weights are read or the model is built.
    """
    check_checkpoint(path, expect_architecture=expect_architecture, expect_num_classes=expect_num_classes)
    payload = read_checkpoint(path, map_location)
    config = payload["config"]
    model = build_model(_model_config(path, config))
    load_state(model, payload["state_dict"], str(path))
    model.eval()
    meta = {k: payload.get(k) for k in ("config", "class_names", "history", "projection", "training")}
    meta["config"] = dict(config, model=model.config.to_dict())
    return model, meta


def check_state(model, state_dict: dict, where: str) -> None:
    """The keys and shapes of `state_dict` against the model's (one CheckpointError line)."""
    own = _model_of(model).state_dict()
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{where}: field 'state_dict' is a {type(state_dict).__name__}, not a dict of tensors")
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise CheckpointError(
            f"{where}: weights do not match the architecture ({len(missing)} missing, "
            f"{len(unexpected)} unexpected keys; {what})")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: weight {key!r} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"{where}: weight {key!r} has shape {tuple(value.shape)}, the model expects {tuple(own[key].shape)}")


def load_state(model, state_dict: dict, where: str) -> None:
    """load_state_dict with mismatches reported as one CheckpointError line."""
    check_state(model, state_dict, where)
    _model_of(model).load_state_dict(state_dict)
