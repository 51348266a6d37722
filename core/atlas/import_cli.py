"""`python -m core import-heatmaps`: another method's heatmaps -> an atlas (FORMATS.md §4)."""
from __future__ import annotations

import argparse
from pathlib import Path

from common import cli as options
from core.errors import FormatError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core import-heatmaps",
                                description="Import images + heatmaps (PNG or .npy) listed in a CSV manifest "
                                            "(columns image, heatmap; optional image_id, label, prototype) "
                                            "as an atlas.")
    p.add_argument("--manifest", required=True, help="CSV manifest; paths relative to its folder")
    p.add_argument("--out", required=True, help="atlas folder to create, e.g. atlases/prototree_cub")
    p.add_argument("--method", required=True, help="method label for reports, e.g. ProtoTree")
    p.add_argument("--dataset", default="external", help="data set name (default %(default)s)")
    p.add_argument("--class-names", help="text file with one class name per line (0-based labels)")
    p.add_argument("--png-kind", choices=["auto", "map", "overlay", "jet"], default="auto",
                   help="PNG heatmaps are raw maps (grey), finished overlays (colour, kept as is) or JET-coloured "
                        "maps without the image (jet: turned back into a map and overlaid like ours); "
                        "auto: grey = map, colour = overlay")
    p.add_argument("--grid-maps", action="store_true",
                   help="accept .npy maps smaller than their image (upsampled bicubically)")
    p.add_argument("--data-root",
                   help="the data set these heatmaps explain (e.g. the CUB-200-2011 folder): its image-set "
                        "identity is recorded, so `study build` can compare this method with atlases built "
                        "on the same images (without it, add it later with `python -m core image-set`)")
    p.add_argument("--data-kind", choices=["cub", "cars", "folder"], default="cub",
                   help="kind of the --data-root data set (default %(default)s)")
    options.add_overwrite(p, "an existing atlas at --out")
    p.add_argument("--allow-outside", action="store_true",
                   help="allow manifest paths outside the manifest's folder (../, absolute paths)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    class_names = None
    if args.class_names:
        path = Path(args.class_names)
        if not path.is_file():
            raise FormatError(f"{path}: class-names file not found")
        class_names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    image_set = None
    if args.data_root:
        from core.atlas.identity import data_set_identity
        image_set = data_set_identity(args.data_kind, args.data_root)
    from core.atlas.import_heatmaps import import_heatmaps
    out = import_heatmaps(args.manifest, args.out, method=args.method, dataset=args.dataset,
                          class_names=class_names, png_kind=args.png_kind, grid_maps=args.grid_maps,
                          overwrite=args.overwrite, allow_outside=args.allow_outside, image_set=image_set)
    from core.atlas.format import read_atlas
    atlas = read_atlas(out)
    print(f"imported {len(atlas.heatmaps)} heatmaps ({args.method}) -> {out}")
    return 0
