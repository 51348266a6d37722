"""Bring another method's heatmaps into the atlas format (FORMATS.md §4).

So that studies can compare our models with methods we do not train (e.g. ProtoTree's
PNG heatmaps): a CSV manifest lists, one row per stimulus, an image and its heatmap
(PNG or .npy; columns `image`, `heatmap`, optional `image_id`, `label`, `prototype`),
paths relative to the manifest's folder. A heatmap is either a raw map (a .npy array,
a grey-level PNG, or a JET-coloured PNG inverted back to levels with `png_kind="jet"`)
— shown with our overlay so that preprocessing is identical across methods and the
method cannot be told from the colouring — or an overlay picture the method drew itself
(a colour PNG, kept as is).
A heatmap must have its image's size (`grid_maps=True` lets a .npy be a coarse grid,
upsampled bicubically). Any bad row is one FormatError naming the manifest, row and
column, and no atlas is written.

Untrusted files: images and PNG heatmaps must be PNG or JPEG within the upload limits
(common/images.py: 10 MB, 40 megapixels), checked from the header before decoding, so a
decompression bomb costs nothing; a .npy map's shape is read before its data. Manifest
paths must stay inside the manifest's folder (no `../`, no absolute paths, no symbolic
link leading out) unless `allow_outside=True` (`--allow-outside`).
"""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from common.images import MAX_PIXELS, ImageLimitError, check_image_bytes, check_size
from core.atlas.format import AtlasWriter, empty_manifest
from core.errors import FormatError
from core.explain import overlay as ov

REQUIRED = ("image", "heatmap")
OPTIONAL = ("image_id", "label", "prototype")
PNG_KINDS = ("auto", "map", "overlay", "jet")
_JET_INVERSE: np.ndarray | None = None


def jet_to_levels(rgb: np.ndarray) -> np.ndarray:
    """Invert a JET-coloured heatmap (RGB) back to [0, 1] levels (nearest JET colour).

    Colours are quantised to 5 bits per channel and looked up in a 32^3 table of the
    nearest of OpenCV's 256 JET colours, built once.
    """
    global _JET_INVERSE
    if _JET_INVERSE is None:
        lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1]
        centres = (np.arange(32) * 8 + 4).astype(np.float32)
        grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)
        d = ((grid[:, None, :] - lut[None, :, :].astype(np.float32)) ** 2).sum(axis=2)
        _JET_INVERSE = d.argmin(axis=1).astype(np.uint8).reshape(32, 32, 32)
    q = (rgb >> 3).astype(np.intp)
    return _JET_INVERSE[q[..., 0], q[..., 1], q[..., 2]].astype(np.float32) / 255.0


def _decode(path: Path, where: str, flags: int) -> np.ndarray:
    """Decode a PNG/JPEG file within the size limits (checked before decoding)."""
    if not path.is_file():
        raise FormatError(f"{where}: file not found: {path}")
    try:
        check_size(path.stat().st_size)
        data = path.read_bytes()
        check_image_bytes(data)
    except ImageLimitError as exc:
        raise FormatError(f"{where}: {path}: {exc}") from None
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error:
        img = None
    if img is None:
        raise FormatError(f"{where}: not a readable image (its pixel data does not decode): {path}")
    return img


def read_rgb(path: Path, where: str) -> np.ndarray:
    """An image file as RGB uint8; FormatError naming `where` if missing, unreadable or too large."""
    return _decode(path, where, cv2.IMREAD_COLOR)[..., ::-1].copy()


def encode_png(rgb: np.ndarray) -> bytes:
    """Fast PNG encoding with OpenCV (RGB in)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise FormatError("could not encode a PNG")
    return buf.tobytes()


def _read_heatmap(path: Path, image_shape, where: str, png_kind: str, grid_maps: bool):
    """(raw map or None, overlay RGB or None) for one heatmap file."""
    if not path.is_file():
        raise FormatError(f"{where}: file not found: {path}")
    height, width = image_shape[:2]
    if path.suffix.lower() == ".npy":
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape   # the header only
            if int(np.prod(shape, dtype=np.int64)) > MAX_PIXELS:
                raise FormatError(f"{where}: {path}: a map of shape {shape} has more than "
                                  f"{MAX_PIXELS // 1_000_000} million values")
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise FormatError(f"{where}: not a readable .npy array: {path} ({exc})") from None
        arr = np.squeeze(arr)
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise FormatError(f"{where}: {path} must be a finite 2-D numeric array, got shape {arr.shape}")
        if arr.shape != (height, width) and not grid_maps:
            raise FormatError(f"{where}: heatmap {path} has size {arr.shape[1]}x{arr.shape[0]} but its image is "
                              f"{width}x{height} (pass --grid-maps for feature-grid maps)")
        return arr.astype(np.float32), None
    img = _decode(path, where, cv2.IMREAD_UNCHANGED)
    if img.shape[:2] != (height, width):
        raise FormatError(f"{where}: heatmap {path} has size {img.shape[1]}x{img.shape[0]} but its image is "
                          f"{width}x{height}")
    if img.dtype != np.uint8:
        img = (img / max(float(img.max()), 1.0) * 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    grey = img.ndim == 2 or (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]))
    kind = ("map" if grey else "overlay") if png_kind == "auto" else png_kind
    if kind == "jet":
        if grey:
            raise FormatError(f"{where}: {path} is grey, not a JET-coloured heatmap (use --png-kind map)")
        return jet_to_levels(np.ascontiguousarray(img[..., ::-1])), None
    if kind == "map":
        levels = img if img.ndim == 2 else img[..., 0]
        return levels.astype(np.float32) / 255.0, None
    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., ::-1]
    return None, np.ascontiguousarray(rgb)


def _int_cell(row: dict, column: str, where: str):
    value = (row.get(column) or "").strip()
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise FormatError(f"{where}: column '{column}': expected an integer, got {value!r}") from None


def read_manifest(path: Path) -> list[dict]:
    if not path.is_file():
        raise FormatError(f"{path}: manifest not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise FormatError(f"{path}: missing column(s) {', '.join(missing)} (need image, heatmap; "
                                  f"optional image_id, label, prototype)")
            rows = [{(k or "").strip(): (v or "") for k, v in r.items()} for r in reader]
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not a UTF-8 CSV ({exc})") from None
    if not rows:
        raise FormatError(f"{path}: no rows")
    return rows


def _inside(base: Path, cell: str, where: str, allow_outside: bool) -> Path:
    """The manifest cell as a path under `base`; FormatError if it leads outside."""
    path = (base / cell).resolve()
    if not allow_outside and not path.is_relative_to(base):
        raise FormatError(f"{where}: {cell!r} leads outside the manifest's folder {base} "
                          f"(pass --allow-outside to allow it)")
    return path


def import_heatmaps(manifest_csv, out, *, method: str, name: str | None = None, dataset: str = "external",
                    class_names: list[str] | None = None, png_kind: str = "auto", grid_maps: bool = False,
                    overwrite: bool = False, allow_outside: bool = False, image_set: dict | None = None) -> Path:
    """Write an atlas at `out` holding one heatmap entry per manifest row; returns `out`.
    Paths of the manifest must stay inside its folder unless `allow_outside`. `image_set`:
    the identity of the data set the heatmaps explain (core/atlas/identity.py), recorded in
    atlas.json so `study build` can compare this method with others on the same images."""
    manifest_csv, out = Path(manifest_csv), Path(out)
    if png_kind not in PNG_KINDS:
        raise FormatError(f"png kind must be one of {', '.join(PNG_KINDS)}, got {png_kind!r}")
    rows = read_manifest(manifest_csv)
    base = manifest_csv.parent.resolve()
    ids_by_path: dict[Path, int] = {}
    paths_by_id: dict[int, Path] = {}
    parsed = []
    for i, row in enumerate(rows):
        where = f"{manifest_csv} row {i + 2}"  # header is line 1
        if not row.get("image", "").strip() or not row.get("heatmap", "").strip():
            raise FormatError(f"{where}: columns 'image' and 'heatmap' must not be empty")
        image = _inside(base, row["image"].strip(), f"{where}: column 'image'", allow_outside)
        image_id = _int_cell(row, "image_id", where)
        if image_id is None:
            image_id = ids_by_path[image] if image in ids_by_path else max(paths_by_id, default=0) + 1
        if paths_by_id.setdefault(image_id, image) != image:
            raise FormatError(f"{where}: column 'image_id': id {image_id} already names another image "
                              f"({paths_by_id[image_id]})")
        ids_by_path.setdefault(image, image_id)
        label = _int_cell(row, "label", where)
        if label is not None and label < 0:
            raise FormatError(f"{where}: column 'label': class index must be >= 0, got {label}")
        if label is not None and class_names is not None and label >= len(class_names):
            raise FormatError(f"{where}: column 'label': class index {label} but only {len(class_names)} classes")
        heatmap = _inside(base, row["heatmap"].strip(), f"{where}: column 'heatmap'", allow_outside)
        parsed.append((where, image, heatmap, image_id, label,
                       _int_cell(row, "prototype", where)))

    labels = [p[4] for p in parsed if p[4] is not None]
    if class_names is None:
        class_names = [str(c) for c in range(max(labels) + 1)] if labels else []
    if image_set is not None and class_names and len(class_names) != image_set["classes"]:
        raise FormatError(f"{manifest_csv}: {len(class_names)} classes, but the data set given with --data-root "
                          f"has {image_set['classes']}: not the data set of these heatmaps")
    doc = empty_manifest(name or out.name, method, dataset, class_names)
    if image_set is not None:
        doc["dataset"]["image_set"] = image_set
    with AtlasWriter(out, overwrite=overwrite) as writer:
        for i, (where, image_file, heat_file, image_id, label, prototype) in enumerate(parsed):
            rgb = read_rgb(image_file, f"{where}: column 'image'")
            act, picture = _read_heatmap(heat_file, rgb.shape, f"{where}: column 'heatmap'", png_kind, grid_maps)
            hid = f"h{i:05d}"
            entry = {"id": hid, "image_id": image_id, "image": writer.add_image(image_id, encode_png(rgb)),
                     "overlay": None, "map": None, "prototype": prototype, "label": label, "box": None}
            if act is not None:
                up = ov.upsample(act, rgb.shape[:2])
                entry["overlay"] = writer.add_overlay(hid, encode_png(ov.blend(rgb, ov.jet_rgb(ov.normalise(up)))))
                entry["map"] = writer.add_map(hid, act)
                entry["box"] = list(ov.high_activation_box(up))
            else:
                entry["overlay"] = writer.add_overlay(hid, encode_png(picture))
            doc["heatmaps"].append(entry)
        doc["created_from"]["data_root"] = str(manifest_csv)
        writer.commit(doc)
    return out
