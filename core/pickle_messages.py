"""One line for a pickle this toolkit refused to load (standard library only).

Every reader of a torch file (the checkpoint reader in core.training, the backbone weight
reader in core.model, the importer of the authors' checkpoints in core.imports) loads
with `weights_only=True`; when torch refuses a file, these turn its long message into one
line that says what the file asked for and what to do. They sit below all three, so the
readers never import the importer (which imports them).
"""
from __future__ import annotations

import re


def short_reason(text: str) -> str:
    """The cause in torch's refusal, without its advice about `weights_only` (a switch this
    toolkit never offers)."""
    found = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    if found:
        return found.group(1).split(". Please")[0].strip()[:200]
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line]
    return (lines[0] if lines else "unreadable")[:200]


def refused_global(text: str) -> str | None:
    """The global a refused pickle asked for (`GLOBAL module.name` in torch's or our message)."""
    found = re.search(r"GLOBAL ([\w.]+)", text)
    return found.group(1) if found else None


def optimizer_message(path, name: str) -> str:
    return (f"{path}: holds optimizer states ({name}), not a model (ProtoPShare saves them beside the model as "
            "NAME_optims.pth): pass the model file NAME.pth")


def foreign_message(path, name: str | None) -> str | None:
    """One short line for a file this toolkit's checkpoint reader refused because its pickle
    names `name`: a whole model of the authors' code, or an optimizer (None otherwise)."""
    name = name or ""
    if name in ("model.PPNet", "model.PrototypeChooser") or name.split(".")[0] in (
            "resnet_features", "densenet_features", "vgg_features"):
        kind = "protopool" if name == "model.PrototypeChooser" else "protopnet"
        return (f"{path}: a whole model pickled by the authors' code ({name}), not a checkpoint of this toolkit "
                f"(nothing was run): convert it with `python -m core import-checkpoint --official {path} "
                f"--kind {kind} --out NEW.pt`" + (" (or --kind protopshare)" if kind == "protopnet" else ""))
    if name.startswith("torch.optim."):
        return f"{path}: holds optimizer states ({name}), not a model (nothing was run)"
    return None


IMPORT_HINT = ("a checkpoint of the authors' ProtoPool/ProtoPNet/ProtoPShare code is converted with "
               "`python -m core import-checkpoint`")


def refusal(path, text: str) -> str | None:
    """One line for a pickle refused for a global it names (None when `text` names none)."""
    name = refused_global(text)
    if name is None:
        return None
    if name.startswith("torch.optim."):
        return optimizer_message(path, name)
    return (f"{path}: refused: the pickle asks for {name!r}, which is not a tensor or a known "
            "ProtoPNet/ProtoPool/ProtoPShare class (nothing was run)")
