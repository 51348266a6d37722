"""The identity of the image set an atlas explains (`dataset.image_set` in atlas.json).

A saliency or consistency comparison is only valid when every method explains the same
images, and two atlases can carry the same data set name (`cub`, or the synthetic birds'
default) while being built on different folders. So an atlas records a content hash of
its data set: the class list, and for every image of the whole data set (train + test)
its id, its path inside the data root, its label and its file size; `study build` refuses
methods whose atlases differ there under one data set name (study/build.py).

`python -m core image-set ATLAS [--data-root DIR --kind KIND]` adds the identity to an
atlas built before it existed (or imported with `import-heatmaps`), without rebuilding.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

from common.atomic import write_atomic
from core.errors import FormatError

IDENTITY_VERSION = 1


def image_set_identity(datasets) -> dict:
    """`{"sha256", "classes", "images"}` of the union of `datasets` (the splits of one data
    set: same class list, paths under the same root). Independent of where the data root
    lies (paths are relative to it) and of how it is split."""
    class_names = list(datasets[0].class_names)
    rows: dict[int, tuple[str, int, int]] = {}
    for ds in datasets:
        root = Path(os.path.abspath(ds.root)) if getattr(ds, "root", None) else None
        for record in ds.records:
            path = Path(os.path.abspath(record.path))
            rel = path.relative_to(root).as_posix() if root is not None and path.is_relative_to(root) else path.name
            try:
                size = path.stat().st_size
            except OSError:
                size = -1
            rows[int(record.image_id)] = (rel, int(record.label), size)
    doc = {"version": IDENTITY_VERSION, "classes": class_names,
           "images": [[i, *rows[i]] for i in sorted(rows)]}
    digest = hashlib.sha256(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    return {"sha256": digest.hexdigest(), "classes": len(class_names), "images": len(rows)}


def data_set_identity(kind: str, root, **options) -> dict:
    """The identity of the whole data set of `kind` at `root` (trainval + test)."""
    from core.data import load_dataset

    return image_set_identity([load_dataset(kind, root, split=split, **options) for split in ("trainval", "test")])


def checkpoint_identity(meta: dict, *, root=None, checkpoint=None, source: str = "checkpoint") -> dict:
    """The identity of a checkpoint's data set (its config's data section, root overridable)."""
    from core.training.data import checkpoint_dataset

    return image_set_identity([checkpoint_dataset(meta, split, root=root, checkpoint=checkpoint, source=source)
                               for split in ("trainval", "test")])


def record_identity(atlas_dir, *, data_root=None, kind: str | None = None, force: bool = False) -> tuple[dict, bool]:
    """Compute the identity of the data set an atlas explains and write it into its
    atlas.json (atomically); returns (identity, written). The data set is `data_root` or
    the atlas's `created_from.data_root`, read as its checkpoint's config says (or `kind`)."""
    from core.atlas.format import read_atlas

    atlas = read_atlas(atlas_dir, check_files=False)
    manifest = atlas.manifest
    if atlas.image_set and not force:
        return atlas.image_set, False
    meta = None
    checkpoint = atlas.created_from_path("checkpoint")
    if checkpoint is not None and kind is None:
        from core.training.checkpoint import load_checkpoint

        meta = load_checkpoint(checkpoint, map_location="cpu")[1]
    root = data_root or atlas.created_from_path("data_root")
    if root is None:
        raise FormatError(f"{manifest}: field 'created_from.data_root': null; pass --data-root DIR "
                          "(the data set the atlas explains)")
    if meta is not None:
        identity = checkpoint_identity(meta, root=root, checkpoint=checkpoint, source=str(checkpoint))
    else:
        identity = data_set_identity(kind or "cub", root)
    if atlas.num_classes != identity["classes"]:
        raise FormatError(f"{manifest}: field 'dataset.class_names': {atlas.num_classes} "
                          f"classes, but {root} has {identity['classes']}: not the data set of this atlas")
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    doc["dataset"]["image_set"] = identity
    write_atomic(manifest, json.dumps(doc, indent=1))
    return identity, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core image-set", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("atlas", help="atlas folder (or its atlas.json)")
    parser.add_argument("--data-root", help="the data set the atlas explains (default: the atlas's "
                                            "created_from.data_root)")
    parser.add_argument("--kind", choices=["cub", "cars", "folder"],
                        help="data set kind (default: the checkpoint's config)")
    parser.add_argument("--force", action="store_true", help="replace an identity the atlas already has")
    args = parser.parse_args(argv)
    identity, written = record_identity(args.atlas, data_root=args.data_root, kind=args.kind, force=args.force)
    where = Path(args.atlas)
    if not written:
        print(f"{where}: already has image set {identity['sha256'][:12]} (--force replaces it)")
    else:
        print(f"{where}: image set {identity['sha256'][:12]} ({identity['classes']} classes, "
              f"{identity['images']} images)")
    return 0
