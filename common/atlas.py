"""The one reader of atlases (FORMATS.md §4): typed, validated, torch-free.

`core/` (atlas building, explanations, metrics), `study/` (stimulus selection) and
`app/` (the model pages) read atlases through `read_atlas` and use the typed `Atlas` it
returns (`core.atlas.format.read_atlas` and `study.atlas_reader.read_atlas` only choose
the error class). Every problem is one line naming `atlas.json` and the field, raised
as the caller's error class (`error=`: core.errors.FormatError, study.errors.StudyError;
by default `AtlasError`), all of them `common.errors.ToolkitError`s.

Paths: the atlas folder is made absolute once, here, so nothing later depends on the
current folder (FORMATS.md §0); every file the manifest names is relative to it and must
stay inside it (`Atlas.file`); the checkpoint and data root it was made from are found
by `Atlas.created_from_path` (common.paths' rule). `check_files=True` also checks that each exists (the
builder does that before committing); readers that only touch a few files pass False
and let `Atlas.file` check the ones they use.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from common.atlas_predictions import validate_predictions
from common.errors import ToolkitError
from common.names import PAIR_SOURCE_RE, PAIR_SOURCES, canonical_similarity
from common.paths import not_found, resolve_stored

ATLAS_FORMAT = "protoproto-atlas"
ATLAS_VERSION = 1
MANIFEST = "atlas.json"
TOP_FIELDS = ("format", "version", "name", "method", "dataset", "model", "accuracy", "created_from",
              "prototypes", "heatmaps", "pairs")
CREATED_FROM_PATHS = ("checkpoint", "data_root")


class AtlasError(ToolkitError):
    """A missing, unreadable or malformed atlas (one line naming the file and the field)."""


@dataclass
class Atlas:
    """A validated atlas: the manifest (`doc`) and typed views of what readers use."""
    root: Path                          # the atlas folder, absolute
    doc: dict[str, Any]                 # the whole validated manifest (atlas.json)
    name: str
    method: str                         # private: never shown to participants
    dataset: str                        # dataset.name
    class_names: list[str]
    heatmaps: list[dict[str, Any]]
    image_set: dict[str, Any] | None     # dataset.image_set: the identity of the images it explains
    prototypes: dict[int, dict[str, Any]]    # by prototype id
    pairs: dict[str, list[dict[str, Any]]]   # by pair source (common.names.PAIR_SOURCES)
    error: type[ToolkitError] = field(default=AtlasError, repr=False, compare=False)

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def file(self, rel: str, field: str) -> Path:
        """Absolute path of a file the atlas refers to; one error naming the field if it
        leaves the atlas folder (also through a link) or does not exist."""
        path = (self.root / rel).resolve()
        if self.root.resolve() not in path.parents:
            raise self.error(f"{self.manifest}: field '{field}': path {rel!r} leaves the atlas folder")
        if not path.is_file():
            raise self.error(f"{self.manifest}: field '{field}': file {rel!r} does not exist")
        return path

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def accuracy(self) -> dict[str, float | None]:
        """{"val": ..., "test": ...}: fractions or None."""
        return dict(self.doc["accuracy"])

    @property
    def model(self) -> dict[str, Any] | None:
        """The training config of the model it explains (None for an imported method)."""
        model = self.doc["model"]
        return model if isinstance(model, dict) else None

    @property
    def similarity(self) -> str | None:
        """The model's `model.similarity`, in its one spelling (old atlases' names migrated)."""
        model = (self.model or {}).get("model") or {}
        name = model.get("similarity")
        return canonical_similarity(name) if isinstance(name, str) else None

    @property
    def architecture(self) -> str | None:
        """The model's `model.architecture` (e.g. `protopool`, `pipnet`); None for an imported
        method; `protopool` for configs written before architectures had a name."""
        if self.model is None:
            return None
        model = self.model.get("model") or {}
        name = model.get("architecture", "protopool")
        return name if isinstance(name, str) else None

    @property
    def named(self) -> int:
        """How many prototypes carry a name."""
        return sum(1 for p in self.prototypes.values() if p.get("name"))

    def prototype_names(self) -> list[str | None]:
        """Each prototype's name indexed by prototype id (None: unnamed or not in the atlas)."""
        names: list[str | None] = [None] * (max(self.prototypes, default=-1) + 1)
        for pid, p in self.prototypes.items():
            names[pid] = p.get("name")
        return names

    def prototype_classes(self) -> list[list[int]]:
        """Each prototype's classes (sorted) indexed by prototype id ([] when not in the atlas)."""
        classes: list[list[int]] = [[] for _ in range(max(self.prototypes, default=-1) + 1)]
        for pid, p in self.prototypes.items():
            classes[pid] = sorted(set(p["classes"]))
        return classes

    def created_from_path(self, field: str) -> Path | None:
        """The existing file or folder that `created_from.<field>` names ("checkpoint",
        "data_root"): relative to the atlas folder, or found from it upwards; absolute as
        is (common.paths); None when the field is null. A recorded path found nowhere is
        one error line naming it and the fix."""
        if field not in CREATED_FROM_PATHS:
            raise ValueError(f"created_from_path: field {field!r} is not one of {CREATED_FROM_PATHS}")
        value = (self.doc.get("created_from") or {}).get(field)
        if not value:
            return None
        found = resolve_stored(value, self.root)
        if found is None:
            raise self.error(f"{self.manifest}: field 'created_from.{field}': {not_found(value, self.root)}; "
                             f"copy it there or rebuild the atlas (python -m core atlas ... --overwrite)")
        return found


def atlas_root(path: str | os.PathLike[str]) -> Path:
    """The atlas folder, given the folder or its atlas.json."""
    path = Path(path)
    return path.parent if path.name == MANIFEST and path.is_file() else path


def read_atlas(path: str | os.PathLike[str], *, check_files: bool = True,
               error: type[ToolkitError] = AtlasError) -> Atlas:
    """Read and validate the atlas at `path` (its folder or its atlas.json)."""
    root = Path(os.path.abspath(atlas_root(path)))
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise error(f"{manifest}: no atlas here (atlas.json missing)")
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{manifest}: not readable JSON ({exc})") from None
    validate_manifest(doc, manifest, root if check_files else None, error=error)
    return Atlas(root=root, doc=doc, name=doc["name"], method=doc["method"], dataset=doc["dataset"]["name"],
                 class_names=list(doc["dataset"]["class_names"]), heatmaps=doc["heatmaps"],
                 image_set=doc["dataset"].get("image_set"),
                 prototypes={p["id"]: p for p in doc["prototypes"]},
                 pairs={s: doc["pairs"][s] for s in _pair_sources(doc["pairs"])}, error=error)


def _pair_sources(pairs: dict[str, Any]) -> list[str]:
    """The two ProtoPShare sources, then any further source the atlas carries (sorted)."""
    return list(PAIR_SOURCES) + sorted(k for k in pairs if k not in PAIR_SOURCES)


def validate_manifest(doc: Any, where: str | os.PathLike[str] = "atlas.json", root: Path | None = None, *,
                      error: type[ToolkitError] = AtlasError) -> None:
    """Check every field of FORMATS.md §4; with `root`, also the files it refers to.
    A problem is one `error` line naming the file and the field."""
    v = _Validator(str(where), Path(root) if root is not None else None, error)
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
    image_set = v.typed(ds, "image_set", dict, "dataset.", nullable=True) if "image_set" in ds else None
    if image_set is not None:
        digest = v.typed(image_set, "sha256", str, "dataset.image_set.")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            v.fail("dataset.image_set.sha256", f"must be 64 lowercase hex digits, got {digest!r}")
        v.typed(image_set, "classes", int, "dataset.image_set.")
        v.typed(image_set, "images", int, "dataset.image_set.")
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
            # how close: a squared distance (distance-based prototypes) or, where prototypes are
            # not points in feature space (PIP-Net), the patch's similarity; at least one
            v.typed(n, "similarity" if "distance" not in n and "similarity" in n else "distance", (int, float), wn)
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
    for source in _pair_sources(pairs):
        if source not in PAIR_SOURCES and (not isinstance(source, str) or not PAIR_SOURCE_RE.match(source)
                                           or source == "undecided"):
            v.fail(f"pairs.{source}", "a further pair source is named with lower-case letters, digits "
                                      "and '_' (not 'undecided')")
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

    validate_predictions(doc, v, n_classes, seen)   # optional section (HIVE tasks, prototype-query similarity)


class _Validator:
    def __init__(self, where: str, root: Path | None, error: type[ToolkitError]):
        self.where, self.root, self.error = where, root, error

    def fail(self, field: str, message: str) -> NoReturn:
        raise self.error(f"{self.where}: field '{field}': {message}" if field else f"{self.where}: {message}")

    def typed(self, obj: Any, key: str, types: type | tuple[type, ...], prefix: str = "",
              nullable: bool = False) -> Any:
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

    def box(self, value: Any, field: str) -> None:
        if (not isinstance(value, list) or len(value) != 4
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
                or not (value[2] > value[0] and value[3] > value[1])):
            self.fail(field, f"must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got {value!r}")

    def file(self, rel: str, field: str) -> None:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            self.fail(field, f"path {rel!r} must stay inside the atlas folder")
        if self.root is not None and not (self.root / rel).is_file():
            self.fail(field, f"file {rel!r} does not exist in {self.root}")
