"""Paths stored inside artifacts (checkpoints, atlases): one rule for writing and reading.

Why: an artifact outlives the folder it was made from. A checkpoint trained from the
repository root records `data.root: data/synthetic-birds`; an atlas records the
checkpoint it came from. Read against the current folder, such paths break as soon as
the workspace is copied or the app is started from elsewhere. So (FORMATS.md §0):

- writing (`stored_path`): a file inside the artifact's workspace (the folder two levels
  above it, WORKSPACE for WORKSPACE/atlases/NAME) is recorded relative to the artifact's
  own folder, e.g. `../../checkpoints/protopool/model.pt`; anything else absolute;
- reading (`resolve_stored`): an absolute path is used as is; a relative one is looked up
  from the artifact's folder, then from each folder above it (the first that exists wins),
  never from the current folder. A path of older artifacts relative to the folder they
  were made from (`data/synthetic-birds` of a checkpoint in `checkpoints/`) is found this
  way, since that folder is almost always above the artifact.

Standard library only: the atlas reader (common.atlas), core and the app use it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

StrPath = Union[str, "os.PathLike[str]"]


def _absolute(path: StrPath) -> Path:
    """An absolute, normalised path without resolving symbolic links."""
    return Path(os.path.abspath(os.fspath(path)))


def stored_path(target: StrPath, folder: StrPath) -> str:
    """How an artifact in `folder` records `target` (a path valid now, from the current folder)."""
    target, folder = _absolute(target), _absolute(folder)
    workspace = folder.parent.parent
    if workspace == Path(workspace.anchor) or not target.is_relative_to(workspace):
        return str(target)
    return Path(os.path.relpath(target, folder)).as_posix()


def candidates(value: StrPath, folder: StrPath) -> list[Path]:
    """Where a stored `value` may be, in the order `resolve_stored` tries them."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return [path]
    folder = _absolute(folder)
    first = _absolute(folder / path)
    if path.parts and path.parts[0] == "..":  # written relative to the artifact: exactly one place
        return [first]
    return [first] + [_absolute(parent / path) for parent in folder.parents]


def resolve_stored(value: StrPath | None, folder: StrPath, *, is_dir: bool | None = None) -> Path | None:
    """The existing file or folder that `value`, stored by an artifact in `folder`, means;
    None when none of its candidates exists (`is_dir`: require a folder or a file)."""
    if value is None or str(value) == "":
        return None
    for path in candidates(value, folder):
        if path.is_dir() if is_dir else path.is_file() if is_dir is False else path.exists():
            return path
    return None


def not_found(value: StrPath, folder: StrPath) -> str:
    """The end of an error line saying where `value` was looked for."""
    places = candidates(value, folder)
    if len(places) == 1:
        return f"{value!s} not found ({places[0]})"
    return f"{value!s} not found in {_absolute(folder)} or any folder above it"
