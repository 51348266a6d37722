"""The atlas folder on disk (FORMATS.md §4): reader, validator and atomic writer.

Torch-free on purpose (stdlib + numpy only) so that `study/` and the app can read
atlases without importing the model stack. Every error is one `FormatError` line
naming the file and the field. The writer builds the whole folder in a hidden
temporary sibling and renames it into place only after the manifest validates, so a
failure never leaves a half-written atlas.
"""
from __future__ import annotations

import io
import json
import math
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from common.atomic import AtomicFolder
from common.names import PAIR_SOURCES
from core.errors import FormatError
from core.paths import not_found, resolve_stored, stored_path

ATLAS_FORMAT = "protoproto-atlas"
ATLAS_VERSION = 1
MANIFEST = "atlas.json"
TOP_FIELDS = ("format", "version", "name", "method", "dataset", "model", "accuracy", "created_from",
              "prototypes", "heatmaps", "pairs")


# -- reading and validation ----------------------------------------------------------

def atlas_root(path) -> Path:
    """The atlas folder, given the folder or its atlas.json."""
    path = Path(path)
    return path.parent if path.name == MANIFEST and path.is_file() else path


def read_atlas(path, check_files: bool = True) -> dict:
    """Read and validate an atlas; returns the manifest with `"root"` (the folder) added.

    `check_files` also checks that every file the manifest names exists inside the folder.
    """
    root = atlas_root(path)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise FormatError(f"{manifest}: no atlas here (atlas.json missing)")
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{manifest}: not readable JSON ({exc})") from None
    validate_manifest(doc, manifest, root if check_files else None)
    doc["root"] = str(root)
    return doc


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


def validate_manifest(doc, where="atlas.json", root: Path | None = None) -> None:
    """Check every field of FORMATS.md §4; with `root`, also the files it refers to."""
    v = _Validator(str(where), Path(root) if root is not None else None)
    if not isinstance(doc, dict):
        v.fail("", "must hold a JSON object")
    if doc.get("format") != ATLAS_FORMAT:
        v.fail("format", f"expected {ATLAS_FORMAT!r}, got {doc.get('format')!r}")
    if doc.get("version") != ATLAS_VERSION:
        v.fail("version", f"this reader handles version {ATLAS_VERSION}, got {doc.get('version')!r} "
                          f"(rebuild the atlas with this toolkit)")
    for key in TOP_FIELDS:
        if key not in doc:
            v.fail(key, "missing")
    v.typed(doc, "name", str)
    v.typed(doc, "method", str)
    ds = v.typed(doc, "dataset", dict)
    v.typed(ds, "name", str, "dataset.")
    n_classes = v.typed(ds, "num_classes", int, "dataset.")
    names = v.typed(ds, "class_names", list, "dataset.")
    if len(names) != n_classes or not all(isinstance(n, str) for n in names):
        v.fail("dataset.class_names", f"must be {n_classes} strings (num_classes), got {len(names)} entries")
    v.typed(doc, "model", dict, nullable=True)
    acc = v.typed(doc, "accuracy", dict)
    for split in ("val", "test"):
        value = v.typed(acc, split, (int, float), "accuracy.", nullable=True)
        if value is not None and not 0.0 <= value <= 1.0:
            v.fail(f"accuracy.{split}", f"must be a fraction in [0, 1], got {value!r}")
    created = v.typed(doc, "created_from", dict)
    v.typed(created, "checkpoint", str, "created_from.", nullable=True)
    v.typed(created, "data_root", str, "created_from.", nullable=True)
    v.typed(created, "seed", int, "created_from.", nullable=True)

    protos = v.typed(doc, "prototypes", list)
    with_nearest = set()
    seen: set[int] = set()
    for i, p in enumerate(protos):
        w = f"prototypes[{i}]."
        pid = v.typed(p, "id", int, w)
        if pid in seen:
            v.fail(f"{w}id", f"duplicate prototype id {pid}")
        seen.add(pid)
        for c in v.typed(p, "classes", list, w):
            if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < n_classes:
                v.fail(f"{w}classes", f"class index {c!r} out of range 0..{n_classes - 1}")
        src = v.typed(p, "source", dict, w, nullable=True)
        if src is not None:
            v.typed(src, "image_id", int, f"{w}source.")
            v.file(v.typed(src, "image", str, f"{w}source."), f"{w}source.image")
            cell = v.typed(src, "cell", list, f"{w}source.")
            if len(cell) != 2 or not all(isinstance(c, int) for c in cell):
                v.fail(f"{w}source.cell", f"must be [row, col], got {cell!r}")
            v.box(src.get("box"), f"{w}source.box")
        nearest = v.typed(p, "nearest", list, w)
        images = set()
        for j, n in enumerate(nearest):
            wn = f"{w}nearest[{j}]."
            image_id = v.typed(n, "image_id", int, wn)
            if image_id in images:
                v.fail(f"{wn}image_id", f"image {image_id} appears twice (at most one patch per image)")
            images.add(image_id)
            v.file(v.typed(n, "image", str, wn), f"{wn}image")
            v.box(n.get("box"), f"{wn}box")
            v.typed(n, "distance", (int, float), wn)
            if n.get("cell") is not None:   # optional (atlases built before them stay valid)
                cell = n["cell"]
                if (not isinstance(cell, list) or len(cell) != 2
                        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cell)):
                    v.fail(f"{wn}cell", f"must be [row, col], got {cell!r}")
            if n.get("cell_box") is not None:
                v.box(n["cell_box"], f"{wn}cell_box")
        if nearest:
            with_nearest.add(pid)
        v.typed(p, "name", str, w, nullable=True)
        v.typed(p, "naming", dict, w, nullable=True)

    heat_ids: set[str] = set()
    for i, h in enumerate(v.typed(doc, "heatmaps", list)):
        w = f"heatmaps[{i}]."
        hid = v.typed(h, "id", str, w)
        if hid in heat_ids:
            v.fail(f"{w}id", f"duplicate heatmap id {hid!r}")
        heat_ids.add(hid)
        v.typed(h, "image_id", int, w)
        v.file(v.typed(h, "image", str, w), f"{w}image")
        v.file(v.typed(h, "overlay", str, w), f"{w}overlay")
        m = v.typed(h, "map", str, w, nullable=True)
        if m is not None:
            v.file(m, f"{w}map")
        proto = v.typed(h, "prototype", int, w, nullable=True)
        if proto is not None and protos and proto not in seen:
            v.fail(f"{w}prototype", f"prototype {proto} is not in 'prototypes'")
        label = v.typed(h, "label", int, w, nullable=True)
        if label is not None and not 0 <= label < n_classes:
            v.fail(f"{w}label", f"class index {label} out of range 0..{n_classes - 1}")
        if h.get("box") is not None:
            v.box(h["box"], f"{w}box")
        elif "box" not in h:
            v.fail(f"{w}box", "missing")
        stim = v.typed(h, "stimulus", dict, w, nullable=True) if "stimulus" in h else None
        if stim is not None:   # optional: the participant's rendering (python -m core atlas)
            v.file(v.typed(stim, "image", str, f"{w}stimulus."), f"{w}stimulus.image")
            v.file(v.typed(stim, "overlay", str, f"{w}stimulus."), f"{w}stimulus.overlay")
            v.box(stim.get("region"), f"{w}stimulus.region")

    pairs = v.typed(doc, "pairs", dict)
    for source in PAIR_SOURCES:
        items = v.typed(pairs, source, list, "pairs.")
        last = math.inf
        for j, pair in enumerate(items):
            w = f"pairs.{source}[{j}]."
            a, b = v.typed(pair, "a", int, w), v.typed(pair, "b", int, w)
            score = v.typed(pair, "score", (int, float), w)
            if not a < b:
                v.fail(f"{w}a", f"pairs need a < b, got a={a}, b={b}")
            for end, pid in (("a", a), ("b", b)):
                if pid not in with_nearest:
                    v.fail(f"{w}{end}", f"prototype {pid} has no nearest patches")
            if score > last + 1e-12:
                v.fail(f"{w}score", "pairs must be sorted most similar first")
            last = score


class _Validator:
    def __init__(self, where: str, root: Path | None):
        self.where, self.root = where, root

    def fail(self, field: str, message: str):
        raise FormatError(f"{self.where}: field '{field}': {message}" if field else f"{self.where}: {message}")

    def typed(self, obj, key, types, prefix="", nullable=False):
        if not isinstance(obj, dict) or key not in obj:
            self.fail(prefix + key, "missing")
        value = obj[key]
        if value is None and nullable:
            return None
        types_t = types if isinstance(types, tuple) else (types,)
        if isinstance(value, bool) or not isinstance(value, types_t):
            names = "/".join(t.__name__ for t in types_t)
            self.fail(prefix + key, f"expected {names}{' or null' if nullable else ''}, got {value!r}"[:200])
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(prefix + key, f"must be finite, got {value!r}")
        return value

    def box(self, value, field):
        if (not isinstance(value, list) or len(value) != 4
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
                or not (value[2] > value[0] and value[3] > value[1])):
            self.fail(field, f"must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got {value!r}")

    def file(self, rel: str, field: str):
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            self.fail(field, f"path {rel!r} must stay inside the atlas folder")
        if self.root is not None and not (self.root / rel).is_file():
            self.fail(field, f"file {rel!r} does not exist in {self.root}")


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

    def __enter__(self) -> "AtlasWriter":
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
