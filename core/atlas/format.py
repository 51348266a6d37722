"""The atlas folder on disk (FORMATS.md §4): reader, validator and atomic writer.

Torch-free on purpose (stdlib + numpy only). Reading and validating is
`common.atlas` (the one reader, shared with `study/` and `app/`): the typed `Atlas`,
every error one `FormatError` line naming the file and the field. The writer builds the
whole folder in a hidden temporary sibling and renames it into place only after the
manifest validates, so a failure never leaves a half-written atlas; `write_pairs`
replaces the `pairs` of an existing atlas (ProtoPShare's candidate pairs,
core.protopshare.pairs computes them), validated, in one atomic write.
"""
from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np

from common import atlas as _atlas
from common.atlas import (ATLAS_FORMAT, ATLAS_VERSION, CREATED_FROM_PATHS, MANIFEST, TOP_FIELDS,  # noqa: F401 (re-exported)
                          Atlas, atlas_root)
from common.atomic import AtomicFolder, write_atomic
from common.names import PAIR_SOURCES
from common.paths import stored_path
from core.errors import FormatError
from core.png import encode_png


# -- reading and validation (common/atlas.py: the one reader, torch-free) -------------

def read_atlas(path, check_files: bool = True) -> Atlas:
    """Read and validate an atlas: the typed `common.atlas.Atlas`. `check_files` also
    checks that every file the manifest names exists inside the folder. Errors are one
    FormatError line naming the file and the field."""
    return _atlas.read_atlas(path, check_files=check_files, error=FormatError)


def validate_manifest(doc, where="atlas.json", root: Path | None = None) -> None:
    """Check every field of FORMATS.md §4; with `root`, also the files it refers to."""
    _atlas.validate_manifest(doc, where, root, error=FormatError)


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

        `created_from` paths are recorded as `common.paths.stored_path` says (relative to the
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


def write_pairs(atlas, pairs: dict) -> Path:
    """Replace the `pairs` field of an existing atlas (its folder or atlas.json),
    validated, atomically (temp + rename); returns the manifest path.

    Every pair must name prototypes of the atlas that have nearest patches (the atlas
    validator checks it); on any error the atlas is left as it was.
    """
    current = read_atlas(atlas, check_files=False)
    doc = dict(current.doc, pairs={s: list(pairs.get(s, [])) for s in PAIR_SOURCES})
    validate_manifest(doc, current.manifest, current.root)
    try:
        write_atomic(current.manifest, json.dumps(doc, indent=1))
    except OSError as exc:
        raise FormatError(f"{current.manifest}: cannot write ({exc})") from None
    return current.manifest
