"""The atlas folder on disk (FORMATS.md §4): reader, validator and atomic writer.

Torch-free on purpose (stdlib + numpy only). Reading and validating is
`common.atlas` (the one reader, shared with `study/`); here it returns the manifest as
a dict and every error is one `FormatError` line naming the file and the field. The
writer builds the whole folder in a hidden temporary sibling and renames it into place
only after the manifest validates, so a failure never leaves a half-written atlas.
"""
from __future__ import annotations

import io
import json
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from common import atlas as _atlas
from common.atlas import ATLAS_FORMAT, ATLAS_VERSION, MANIFEST, TOP_FIELDS, atlas_root  # noqa: F401 (re-exported)
from common.atomic import AtomicFolder
from common.names import PAIR_SOURCES
from core.errors import FormatError
from core.paths import not_found, resolve_stored, stored_path


# -- reading and validation (common/atlas.py: the one reader, torch-free) -------------

def read_atlas(path, check_files: bool = True) -> dict:
    """Read and validate an atlas; returns the manifest with `"root"` (the folder,
    absolute) added. `check_files` also checks that every file the manifest names exists
    inside the folder. Errors are one FormatError line naming the file and the field."""
    return _atlas.read_atlas(path, check_files=check_files, error=FormatError).as_dict()


def validate_manifest(doc, where="atlas.json", root: Path | None = None) -> None:
    """Check every field of FORMATS.md §4; with `root`, also the files it refers to."""
    _atlas.validate_manifest(doc, where, root, error=FormatError)


CREATED_FROM_PATHS = ("checkpoint", "data_root")


def created_from_path(atlas: dict, field: str) -> Path | None:
    """The existing file or folder that `created_from.<field>` of a read atlas names (a path
    relative to the atlas folder, or found from it upwards; absolute as is); None when the
    field is null. A recorded path found nowhere is a FormatError naming it and the fix."""
    value = (atlas.get("created_from") or {}).get(field)
    if not value:
        return None
    root = Path(atlas["root"])
    found = resolve_stored(value, root)
    if found is None:
        raise FormatError(f"{root / MANIFEST}: field 'created_from.{field}': {not_found(value, root)}; "
                          f"copy it there or rebuild the atlas (python -m core atlas ... --overwrite)")
    return found


# -- writing ------------------------------------------------------------------------

def empty_manifest(name: str, method: str, dataset_name: str, class_names: list[str]) -> dict:
    """A manifest with every field present and nothing in the lists yet."""
    return {"format": ATLAS_FORMAT, "version": ATLAS_VERSION, "name": name, "method": method,
            "dataset": {"name": dataset_name, "num_classes": len(class_names), "class_names": list(class_names)},
            "model": None, "accuracy": {"val": None, "test": None},
            "created_from": {"checkpoint": None, "data_root": None, "seed": None},
            "prototypes": [], "heatmaps": [], "pairs": {s: [] for s in PAIR_SOURCES}}


def image_path(image_id: int) -> str:
    return f"images/{int(image_id)}.png"


def map_path(heatmap_id: str) -> str:
    return f"maps/{heatmap_id}.npy"


def overlay_path(heatmap_id: str) -> str:
    return f"overlays/{heatmap_id}.png"


class AtlasWriter:
    """Builds an atlas in a temporary sibling folder; `commit` validates and renames.

    Use as a context manager: leaving the block with an exception removes the temporary
    folder and leaves any existing atlas untouched.
    """

    def __init__(self, out, overwrite: bool = False):
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise FormatError(f"{self.out}: already exists (choose another name or pass --overwrite)")
        self._folder = AtomicFolder(self.out, replace=overwrite)   # first removes temp folders of killed runs
        self.tmp = self._folder.path
        for sub in ("images", "maps", "overlays"):
            (self.tmp / sub).mkdir()
        self.overwrite = overwrite
        self._images: set[int] = set()
        self._lock = threading.Lock()  # writers may run in threads; each image is written once

    def __enter__(self) -> AtlasWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def has_image(self, image_id: int) -> bool:
        return int(image_id) in self._images

    def add_image(self, image_id: int, png) -> str:
        """Store an image (PNG bytes, or an RGB uint8 array) once; returns its relative path."""
        rel = image_path(image_id)
        with self._lock:
            if int(image_id) in self._images:
                return rel
            self._images.add(int(image_id))
        self._write(rel, png if isinstance(png, (bytes, bytearray)) else encode_png(png))
        return rel

    def add_map(self, heatmap_id: str, act_map: np.ndarray) -> str:
        rel = map_path(heatmap_id)
        buf = io.BytesIO()
        np.save(buf, np.asarray(act_map, dtype=np.float32), allow_pickle=False)
        self._write(rel, buf.getvalue())
        return rel

    def add_overlay(self, heatmap_id: str, png) -> str:
        rel = overlay_path(heatmap_id)
        self._write(rel, png if isinstance(png, (bytes, bytearray)) else encode_png(png))
        return rel

    def add_file(self, rel: str, data: bytes) -> str:
        self._write(rel, data)
        return rel

    def _write(self, rel: str, data: bytes) -> None:
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def commit(self, manifest: dict) -> Path:
        """Validate against the written files, write atlas.json, rename into place.

        `created_from` paths are recorded as `core.paths.stored_path` says (relative to the
        atlas folder when inside its workspace), so a copied workspace keeps working."""
        created = manifest.get("created_from") if isinstance(manifest, dict) else None
        if isinstance(created, dict):
            created = {k: stored_path(v, self.out) if k in CREATED_FROM_PATHS and isinstance(v, str) and v else v
                       for k, v in created.items()}
            manifest = dict(manifest, created_from=created)
        validate_manifest(manifest, self.out / MANIFEST, self.tmp)
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        try:
            return self._folder.commit()
        except FileExistsError:
            raise FormatError(f"{self.out}: appeared while building (not overwritten)") from None

    def abort(self) -> None:
        self._folder.abort()


# -- a small PNG codec (stdlib zlib), so torch-free tools can write images ------------

def encode_png(rgb: np.ndarray, level: int = 6) -> bytes:
    """PNG bytes of an (H, W, 3) or (H, W) uint8 array (no filtering; zlib at `level`)."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"encode_png needs uint8 (H, W), (H, W, 3) or (H, W, 4), got {a.dtype} {a.shape}")
    height, width = a.shape[:2]
    channels = 1 if a.ndim == 2 else a.shape[2]
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.ascontiguousarray(a).reshape(height, width * channels)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, level))
            + chunk(b"IEND", b""))
