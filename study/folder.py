"""Reading a built study folder (FORMATS.md section 5).

`StudyFolder` is what the session, the exports and the importers work from: the public
manifest, items and versions, and (on demand) the private key. Only `media/` is ever
served to participants; everything else stays on the server.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from study.errors import StudyError

STUDY_FORMAT = "protoproto-study"
KEY_FORMAT = "protoproto-study-key"
VERSION = 1


def dump_json(obj) -> bytes:
    """Canonical JSON bytes: sorted keys, fixed separators, UTF-8, trailing newline."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _load(path: Path, fmt: str | None) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{path}: missing (is this a study folder built by `python -m study build`?)") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path}: not readable JSON ({exc})") from None
    if fmt is not None:
        if not isinstance(data, dict) or data.get("format") != fmt:
            raise StudyError(f"{path}: field 'format': expected {fmt!r} (got {data.get('format') if isinstance(data, dict) else None!r})")
        if data.get("version") != VERSION:
            raise StudyError(f"{path}: field 'version': this reader handles version {VERSION} (got {data.get('version')!r})")
    return data


@dataclass
class StudyFolder:
    root: Path
    manifest: dict
    items: dict[str, dict]
    versions: list[list[str]]

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def options(self) -> list[dict]:
        return self.manifest["options"]

    @property
    def option_values(self) -> list[str]:
        return [o["value"] for o in self.options]

    @property
    def wording(self) -> dict:
        return self.manifest["wording"]

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @cached_property
    def key(self) -> dict[str, dict]:
        """Private: blinded item id -> method, sources, data set, expected answer."""
        data = _load(self.root / "private" / "key.json", KEY_FORMAT)
        return data["items"]

    def media_path(self, rel: str) -> Path:
        return self.root / rel


def open_study(root: str | Path) -> StudyFolder:
    """Load a study folder; one StudyError naming the file at fault. Media paths are
    relative to the folder, made absolute here (a later change of folder breaks nothing)."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise StudyError(f"{root}: no such study folder")
    manifest = _load(root / "study.json", STUDY_FORMAT)
    items = _load(root / "items.json", None)
    versions = _load(root / "versions.json", None)
    if not isinstance(items, dict) or not isinstance(versions, dict) or not isinstance(versions.get("versions"), list):
        raise StudyError(f"{root}: items.json / versions.json are not in the study format")
    for v, seq in enumerate(versions["versions"]):
        for item in seq:
            if item not in items:
                raise StudyError(f"{root / 'versions.json'}: field 'versions[{v}]': unknown item {item!r}")
    return StudyFolder(root=root, manifest=manifest, items=items, versions=versions["versions"])
