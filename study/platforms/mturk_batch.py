"""What the study remembers of its Mechanical Turk batches (FORMATS.md §5, `private/mturk/`).

- `private/mturk/batch-<ID>.json`: one per export, the HIT rows exactly as written to the
  batch's input.csv. The importer accepts an assignment only if its HIT comes from such a
  row (its `Input.*` columns, or the hidden `batch` and `version` fields of the page, match
  a recorded row), so results of another batch, study or hand-made HIT are refused.
- `private/mturk/secret.key`: 32 random bytes (hex), made once per study; participant ids
  and link tokens of imported assignments are HMAC-SHA256 of the AssignmentId under this
  key, so the same assignment always maps to the same participant (imports stay
  idempotent) while nobody without the study's private folder can derive a token.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from pathlib import Path

from study.errors import StudyError
from study.folder import StudyFolder, dump_json

BATCH_FORMAT = "protoproto-mturk-batch"
VERSION = 1
_BATCH_ID = re.compile(r"^[0-9a-f]{16}$")


def folder(study: StudyFolder) -> Path:
    return study.root / "private" / "mturk"


def new_batch_id() -> str:
    return secrets.token_hex(8)


def batch_path(study: StudyFolder, batch: str) -> Path:
    return folder(study) / f"batch-{batch}.json"


def _write_new(path: Path, data: bytes) -> bool:
    """Create `path` with `data` atomically, only if it does not exist (False if it did)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)           # fails if another process created it first
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def save_batch(study: StudyFolder, batch: str, base_url: str, rows: list[dict[str, str]]) -> Path:
    """Record the HIT rows of a new export; returns the record's path."""
    doc = {"format": BATCH_FORMAT, "version": VERSION, "study_id": study.id, "batch": batch,
           "fingerprint": study.fingerprint, "base_url": base_url,
           "hits": [{"version": int(row["version"]), "input": row} for row in rows]}
    path = batch_path(study, batch)
    if not _write_new(path, dump_json(doc)):
        raise StudyError(f"{path}: already exists (batch ids are random; export again)")
    return path


def load_batch(study: StudyFolder, batch: str) -> dict | None:
    """The recorded batch `batch` of this study, or None if there is none."""
    if not _BATCH_ID.match(batch or ""):
        return None
    path = batch_path(study, batch)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != BATCH_FORMAT or doc.get("study_id") != study.id:
        raise StudyError(f"{path}: field 'format'/'study_id': not a batch record of study {study.id!r}")
    return doc


def batches(study: StudyFolder) -> list[str]:
    return sorted(p.name[len("batch-"):-len(".json")] for p in folder(study).glob("batch-*.json"))


def secret(study: StudyFolder) -> bytes:
    """The study's MTurk key (created on first use, readable by its owner only)."""
    path = folder(study) / "secret.key"
    if not path.exists():
        _write_new(path, secrets.token_hex(32).encode("ascii") + b"\n")
        os.chmod(path, 0o600)
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError):
        raise StudyError(f"{path}: not a study key (64 hex characters expected)") from None
    if len(key) != 32:
        raise StudyError(f"{path}: not a study key (64 hex characters expected)")
    return key


def keyed(study: StudyFolder, purpose: str, value: str, key: bytes | None = None) -> str:
    """HMAC-SHA256 (hex) of `value` for one purpose under the study's MTurk key."""
    key = secret(study) if key is None else key
    return hmac.new(key, f"{purpose}\0{study.id}\0{value}".encode(), hashlib.sha256).hexdigest()
