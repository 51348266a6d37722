"""Read a checkpoint written by the authors' code without running any of its pickle.

ProtoPNet and ProtoPShare save whole models (`torch.save(model)`): a pickle naming their
classes (`model.PPNet`, `resnet_features.BasicBlock`, ...) and torch.nn modules. We load
it with torch's restricted unpickler (`weights_only=True`), which only rebuilds tensors
and plain containers, and allow exactly those class names more, each mapped to an inert
stand-in that just keeps the pickled attribute dict: no class of the official code or of
torch.nn is imported or constructed, no `__setstate__` or `__reduce__` of theirs runs.
Any other global (e.g. `os.system` in a crafted file) is refused with one error line.
ProtoPool saves `{"model_state_dict": ..., "epoch": ...}`: plain, loaded the same way.

Files written by PyTorch < 1.6 (2019-era ProtoPNet; today `torch.save(...,
_use_new_zipfile_serialization=False)`) use the legacy format, which weights-only loading
cannot read: it refers to every module class through a persistent id that also carries
the class's source code. They are read by `torch.load` with a restricted pickle module
(`RestrictedUnpickler`): its `find_class`, the only way a pickle reaches a Python object,
answers from the same allow-list (the stand-ins above, plus the tensor-rebuilding
functions, OrderedDict and set) and refuses everything else; the stored source is never
compiled (torch only compares it, and cannot find ours).
"""
from __future__ import annotations

import collections
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from core.errors import CheckpointError
from core.pickle_messages import (IMPORT_HINT, foreign_message, optimizer_message,  # noqa: F401 (re-exported)
                                   refusal, refused_global, short_reason)

# the classes of the official repositories (module = file name in the repository)
OFFICIAL_CLASSES = (
    "model.PPNet", "model.PrototypeChooser",
    "resnet_features.ResNet_features", "resnet_features.BasicBlock", "resnet_features.Bottleneck",
    "densenet_features.DenseNet_features", "densenet_features._DenseLayer", "densenet_features._DenseBlock",
    "densenet_features._Transition",
    "vgg_features.VGG_features",
)


class StandIn:
    """An inert object for one allowed class: keeps the pickled state, nothing else."""

    official_name = "?"
    dump_patches = False    # asked by torch when a legacy file's stored source differs

    def __setstate__(self, state):
        self.__dict__["state"] = state if isinstance(state, dict) else {"_state": state}

    def __repr__(self) -> str:
        return f"<stand-in for {self.official_name}>"


def _stand_in(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (StandIn,), {"official_name": name})


def _torch_module_names() -> list[str]:
    """Every nn.Module subclass torch.nn exposes, by the name a pickle refers to it."""
    names = set()
    for attr in dir(nn):
        obj = getattr(nn, attr)
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            names.add(f"{obj.__module__}.{obj.__qualname__}")
    return sorted(names)


def _allowed() -> list[tuple[type, str]]:
    return [(_stand_in(n), n) for n in (*OFFICIAL_CLASSES, *_torch_module_names())]


def _legacy_allowed() -> dict[str, object]:
    """Globals a legacy whole-model pickle may name: the stand-ins and what rebuilds tensors."""
    import torch._utils as tu

    allowed: dict[str, object] = {name: cls for cls, name in _allowed()}
    allowed.update({
        "torch._utils._rebuild_tensor": tu._rebuild_tensor, "torch._utils._rebuild_tensor_v2": tu._rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": tu._rebuild_parameter, "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set, "__builtin__.set": set, "torch.Size": torch.Size,   # (protocol 2 writes __builtin__)
        # modules pickled by PyTorch 1.0-1.4 keep `_backend`, pickled as a call of this function
        "torch.nn.backends.thnn._get_thnn_function_backend": _no_backend,
    })
    return allowed


def _no_backend():
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class only answers from `_legacy_allowed()`."""

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed_globals = _legacy_allowed()

    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if full not in self._allowed_globals:
            raise pickle.UnpicklingError(f"GLOBAL {full} is not allowed")
        return self._allowed_globals[full]


class _RestrictedPickleModule:
    """What torch.load needs of a `pickle_module` (torch subclasses our Unpickler)."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()


def restricted_load(path) -> object:
    """torch.load(weights_only=True) with the official classes and torch.nn modules as stand-ins;
    a legacy (PyTorch < 1.6) file through `RestrictedUnpickler` with the same allow-list."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: official checkpoint file does not exist")
    legacy = not zipfile.is_zipfile(path)
    try:
        if legacy:
            with warnings.catch_warnings():    # "source of class ... not found / changed": we never use it
                warnings.simplefilter("ignore")
                return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
        with torch.serialization.safe_globals(_allowed()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every refusal is one line
        text = str(exc)
        message = refusal(path, text)
        if message:
            raise CheckpointError(message) from None
        raise CheckpointError(f"{path}: not a loadable PyTorch checkpoint ({short_reason(text)})") from None


def _flatten(obj, prefix: str, out: dict) -> None:
    """Parameters and buffers of a stand-in module tree -> {dotted name: tensor}."""
    state = obj.state
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, StandIn):
            _flatten(child, f"{prefix}{name}.", out)


def official_contents(path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, extras) of an official checkpoint.

    extras: `class` (the official class name, or None for a plain state dict), and the
    plain attributes the forward pass depends on when a whole model was pickled
    (`prototype_class_identity`, `prototype_activation_function`, `epsilon`,
    `num_descriptive`, `use_last_layer`, `img_size`).
    """
    obj = restricted_load(path)
    extras: dict = {"class": None}
    if isinstance(obj, StandIn) and obj.official_name.endswith("DataParallel"):
        obj = (obj.state.get("_modules") or {}).get("module", obj)   # torch.save(nn.DataParallel(model))
    if isinstance(obj, StandIn):
        if obj.official_name not in ("model.PPNet", "model.PrototypeChooser"):
            raise CheckpointError(f"{path}: holds a {obj.official_name}, not a ProtoPNet/ProtoPool model")
        extras["class"] = obj.official_name
        state: dict[str, torch.Tensor] = {}
        _flatten(obj, "", state)
        attrs = obj.state
        for key in ("prototype_class_identity", "prototype_activation_function", "epsilon", "num_descriptive",
                    "use_last_layer", "img_size"):
            if key in attrs:
                extras[key] = attrs[key]
        return state, extras
    if isinstance(obj, dict):
        if any(isinstance(v, dict) and {"state", "param_groups"} <= set(v) for v in obj.values()):
            raise CheckpointError(f"{path}: holds optimizer state dicts, not a model: pass the model file")
        for key in ("model_state_dict", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
            return state, extras
    raise CheckpointError(f"{path}: holds neither a pickled official model nor a state dict of tensors "
                          f"(found {type(obj).__name__})")
