"""Torch-free reader of atlases (FORMATS.md section 4), as much as studies need.

`study/` must not import torch, so it validates `atlas.json` itself: the manifest's
format and version, the fields a study reads (heatmaps, prototypes' nearest patches,
pairs), and that every path stays inside the atlas folder. Files are checked when a
stimulus is actually selected (`Atlas.file`), so a large atlas is not walked in full.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from common.names import PAIR_SOURCES
from study.errors import StudyError

ATLAS_FORMAT = "protoproto-atlas"
ATLAS_VERSION = 1


@dataclass
class Atlas:
    root: Path
    name: str
    method: str
    dataset: str
    heatmaps: list[dict]
    prototypes: dict[int, dict]
    pairs: dict[str, list[dict]]

    @property
    def manifest(self) -> Path:
        return self.root / "atlas.json"

    def file(self, rel: str, field: str) -> Path:
        """Absolute path of a file the atlas refers to; error naming the field if absent."""
        path = (self.root / rel).resolve()
        if self.root.resolve() not in path.parents:
            raise StudyError(f"{self.manifest}: field '{field}': path {rel!r} leaves the atlas folder")
        if not path.is_file():
            raise StudyError(f"{self.manifest}: field '{field}': file {rel!r} does not exist")
        return path


def _need(manifest: Path, obj: dict, key: str, types, where: str, nullable: bool = False):
    if not isinstance(obj, dict) or key not in obj:
        raise StudyError(f"{manifest}: field '{where}{key}': missing")
    value = obj[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise StudyError(f"{manifest}: field '{where}{key}': wrong type (got {value!r})")
    if not isinstance(value, types):
        raise StudyError(f"{manifest}: field '{where}{key}': wrong type (got {value!r})")
    return value


def _box(manifest: Path, value, where: str) -> list[float]:
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or value[2] <= value[0] or value[3] <= value[1]):
        raise StudyError(f"{manifest}: field '{where}': must be [x0, y0, x1, y1] with x1 > x0, y1 > y0 (got {value!r})")
    return [float(v) for v in value]


def read_atlas(root: str | Path) -> Atlas:
    """Read and validate `root/atlas.json`; one StudyError naming file and field on failure.

    Every file path of the manifest is relative to the atlas folder and must stay inside
    it (`Atlas.file`); the folder is made absolute here, so nothing later depends on the
    current folder (FORMATS.md §0)."""
    root = Path(os.path.abspath(root))
    manifest = root / "atlas.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{manifest}: no atlas here (atlas.json missing)") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{manifest}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise StudyError(f"{manifest}: must hold a JSON object")
    if data.get("format") != ATLAS_FORMAT:
        raise StudyError(f"{manifest}: field 'format': expected {ATLAS_FORMAT!r} (got {data.get('format')!r})")
    if data.get("version") != ATLAS_VERSION:
        raise StudyError(f"{manifest}: field 'version': this reader handles version {ATLAS_VERSION} (got {data.get('version')!r})")
    name = _need(manifest, data, "name", str, "")
    method = _need(manifest, data, "method", str, "")
    dataset = _need(manifest, data, "dataset", dict, "")
    dataset_name = _need(manifest, dataset, "name", str, "dataset.")

    heatmaps = _need(manifest, data, "heatmaps", list, "")
    seen = set()
    for i, h in enumerate(heatmaps):
        where = f"heatmaps[{i}]."
        hid = _need(manifest, h, "id", str, where)
        if hid in seen:
            raise StudyError(f"{manifest}: field '{where}id': duplicate id {hid!r}")
        seen.add(hid)
        _need(manifest, h, "image_id", int, where)
        _need(manifest, h, "image", str, where)
        _need(manifest, h, "overlay", str, where)
        stim = h.get("stimulus")
        if stim is not None:   # optional: the crop rendered for participants (FORMATS §4)
            _need(manifest, h, "stimulus", dict, where)
            _need(manifest, stim, "image", str, where + "stimulus.")
            _need(manifest, stim, "overlay", str, where + "stimulus.")

    prototypes: dict[int, dict] = {}
    for i, p in enumerate(_need(manifest, data, "prototypes", list, "")):
        where = f"prototypes[{i}]."
        pid = _need(manifest, p, "id", int, where)
        nearest = _need(manifest, p, "nearest", list, where)
        for j, n in enumerate(nearest):
            _need(manifest, n, "image_id", int, f"{where}nearest[{j}].")
            _need(manifest, n, "image", str, f"{where}nearest[{j}].")
            _box(manifest, _need(manifest, n, "box", list, f"{where}nearest[{j}]."), f"{where}nearest[{j}].box")
            if n.get("cell_box") is not None:   # optional: the feature cell's square (FORMATS §4)
                _box(manifest, n["cell_box"], f"{where}nearest[{j}].cell_box")
        prototypes[pid] = p

    pairs_raw = _need(manifest, data, "pairs", dict, "")
    pairs: dict[str, list[dict]] = {}
    for source in PAIR_SOURCES:
        items = pairs_raw.get(source, [])
        if not isinstance(items, list):
            raise StudyError(f"{manifest}: field 'pairs.{source}': must be a list")
        for j, pair in enumerate(items):
            where = f"pairs.{source}[{j}]."
            a = _need(manifest, pair, "a", int, where)
            b = _need(manifest, pair, "b", int, where)
            for end, pid in (("a", a), ("b", b)):
                if pid not in prototypes or not prototypes[pid]["nearest"]:
                    raise StudyError(f"{manifest}: field '{where}{end}': prototype {pid} has no nearest patches")
        pairs[source] = items
    return Atlas(root=root, name=name, method=method, dataset=dataset_name,
                 heatmaps=heatmaps, prototypes=prototypes, pairs=pairs)
