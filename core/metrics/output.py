"""metrics.json (FORMATS.md §4.1): writing it, reading it back, attaching it to an atlas.

Torch-free (stdlib + json) so the app and tools can read metrics without the model stack;
`study/` has its own reader (study.analysis.metrics_join) because it imports no core module.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from common.atomic import write_atomic
from core.errors import FormatError

METRICS_FORMAT = "protoproto-metrics"
METRICS_VERSION = 1
ATLAS_FIELD = "metrics"
ATLAS_FILE = "metrics.json"


def _clean(value):
    """NaN / inf -> None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def metrics_document(result: dict, *, checkpoint: str | None, cub_root: str | None, method: str | None,
                     num_classes: int) -> dict:
    doc = {"format": METRICS_FORMAT, "version": METRICS_VERSION, "method": method,
           "created_from": {"checkpoint": checkpoint, "cub_root": cub_root}, "num_classes": int(num_classes)}
    doc.update(result)
    return _clean(doc)


def _atomic_write_text(path: Path, text: str) -> None:
    write_atomic(path, text)


def write_metrics(doc: dict, path) -> Path:
    path = Path(path)
    validate_metrics(doc, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, json.dumps(doc, indent=1))
    return path


def read_metrics(path) -> dict:
    """Read and validate metrics.json (or the metrics an atlas folder refers to)."""
    path = Path(path)
    if path.is_dir():
        manifest = path / "atlas.json"
        if manifest.is_file():
            try:
                rel = json.loads(manifest.read_text(encoding="utf-8")).get(ATLAS_FIELD)
            except (OSError, ValueError) as exc:
                raise FormatError(f"{manifest}: not readable JSON ({exc})") from None
            if not rel:
                raise FormatError(f"{manifest}: field '{ATLAS_FIELD}' missing (run python -m core metrics --atlas)")
            path = path / rel
        else:
            path = path / ATLAS_FILE
    if not path.is_file():
        raise FormatError(f"{path}: metrics file does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{path}: not readable JSON ({exc})") from None
    validate_metrics(doc, str(path))
    return doc


def validate_metrics(doc, where: str) -> None:
    def fail(field, msg):
        raise FormatError(f"{where}: field '{field}': {msg}")

    if not isinstance(doc, dict):
        raise FormatError(f"{where}: must hold a JSON object")
    if doc.get("format") != METRICS_FORMAT:
        fail("format", f"expected {METRICS_FORMAT!r}, got {doc.get('format')!r}")
    if doc.get("version") != METRICS_VERSION:
        fail("version", f"this reader handles version {METRICS_VERSION}, got {doc.get('version')!r}")
    for key, kind in (("settings", dict), ("model", dict), ("prototypes", list)):
        if not isinstance(doc.get(key), kind):
            fail(key, f"expected {kind.__name__}, got {type(doc.get(key)).__name__}")
    seen = set()
    for i, p in enumerate(doc["prototypes"]):
        if not isinstance(p, dict) or not isinstance(p.get("id"), int) or isinstance(p.get("id"), bool):
            fail(f"prototypes[{i}].id", "expected an integer")
        if p["id"] in seen:
            fail(f"prototypes[{i}].id", f"duplicate prototype id {p['id']}")
        seen.add(p["id"])
        for key in ("stability", "box_share"):
            v = p.get(key)
            if v is not None and (not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0):
                fail(f"prototypes[{i}].{key}", f"must be a fraction in [0, 1] or null, got {v!r}")


def attach_to_atlas(doc: dict, atlas_dir) -> Path:
    """Write `doc` as ATLAS/metrics.json and refer to it from atlas.json (field `metrics`).

    The atlas must describe the same model: as many classes, and every atlas prototype id
    among the metrics' prototypes. Both files are replaced atomically.
    """
    from core.atlas.format import read_atlas

    atlas = read_atlas(atlas_dir, check_files=False)
    root, where = atlas.root, atlas.manifest
    if atlas.num_classes != doc.get("num_classes"):
        raise FormatError(f"{where}: the atlas has {atlas.num_classes} classes, "
                          f"the metrics {doc.get('num_classes')}: not the same model")
    ids = {p["id"] for p in doc["prototypes"]}
    missing = [pid for pid in atlas.prototypes if pid not in ids]
    if missing:
        raise FormatError(f"{where}: atlas prototype {missing[0]} has no metrics: not the same model")
    validate_metrics(doc, str(root / ATLAS_FILE))
    manifest = json.loads(where.read_text(encoding="utf-8"))
    manifest[ATLAS_FIELD] = ATLAS_FILE
    _atomic_write_text(root / ATLAS_FILE, json.dumps(doc, indent=1))
    _atomic_write_text(where, json.dumps(manifest, indent=1))
    return root / ATLAS_FILE
