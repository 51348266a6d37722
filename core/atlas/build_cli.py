"""`python -m core atlas`: build an atlas from a checkpoint (FORMATS.md §4)."""
from __future__ import annotations

import argparse
import time

from common import cli as options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core atlas",
                                description="Build an atlas: prototypes (classes, source, nearest patches, names), "
                                            "heatmaps of chosen images, accuracy, candidate pairs.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file (python -m core train)")
    p.add_argument("--data", help="data root (default: the one in the checkpoint's config)")
    p.add_argument("--out", required=True, help="atlas folder to create, e.g. atlases/protopool_cub")
    p.add_argument("--method", help="method label for reports (default: the architecture, e.g. ProtoPool)")
    p.add_argument("--name", help="atlas name (default: the folder name)")
    p.add_argument("--images", type=int, default=30, help="heatmap images, stratified by class (default %(default)s)")
    p.add_argument("--heatmaps-per-image", type=int, default=1,
                   help="top contributing prototypes (to the true class) per image (default %(default)s)")
    p.add_argument("--split", default="test", choices=["train", "val", "trainval", "test"],
                   help="split the heatmap images come from (default %(default)s)")
    p.add_argument("--stimulus-side", type=int, default=448,
                   help="longer side in px of the saliency stimuli rendered from the original crop (default %(default)s)")
    p.add_argument("--k", type=int, default=5, help="nearest patches per prototype (default %(default)s)")
    p.add_argument("--class-specific", action="store_true",
                   help="nearest patches only from images of the prototype's classes")
    p.add_argument("--cub-root", help="CUB-200-2011 root with attributes and parts: name the prototypes")
    p.add_argument("--pairs", type=int, default=50,
                   help="candidate pairs kept per similarity (data-dependent, Euclidean; default %(default)s)")
    p.add_argument("--predictions", type=int, default=40,
                   help="test images with their top classes and prototype evidence (HIVE tasks, prototype-query "
                        "similarity), half correctly and half wrongly predicted where possible; 0: none "
                        "(default %(default)s)")
    p.add_argument("--prediction-k", type=int, default=4,
                   help="top classes stored per prediction (default %(default)s)")
    p.add_argument("--no-test-accuracy", action="store_true",
                   help="forward only the chosen images (the atlas then has no test accuracy)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="data-loader workers")
    options.add_device(p)
    options.add_seed(p, help="seed of the image choice (recorded)")
    options.add_overwrite(p, "an existing atlas at --out")
    options.add_quiet(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from core.atlas.build import AtlasOptions, build_atlas
    from core.atlas.format import read_atlas
    from core.errors import UserFacingError

    for flag, value in (("--images", args.images), ("--k", args.k), ("--heatmaps-per-image", args.heatmaps_per_image),
                        ("--batch-size", args.batch_size), ("--stimulus-side", args.stimulus_side),
                        ("--predictions", args.predictions), ("--prediction-k", args.prediction_k)):
        if value < (0 if flag in ("--images", "--predictions") else 1):
            raise UserFacingError(f"{flag} must be positive, got {value}")
    opts = AtlasOptions(images=args.images, heatmaps_per_image=args.heatmaps_per_image, heatmap_split=args.split,
                        k=args.k, class_specific=args.class_specific, batch_size=args.batch_size,
                        workers=args.workers, device=args.device, seed=args.seed, pairs=args.pairs,
                        test_accuracy=not args.no_test_accuracy, cub_root=args.cub_root, progress=not args.quiet,
                        stimulus_side=args.stimulus_side, predictions=args.predictions,
                        prediction_k=args.prediction_k)
    start = time.perf_counter()
    out = build_atlas(args.checkpoint, args.out, data_root=args.data, method=args.method, name=args.name,
                      opts=opts, overwrite=args.overwrite)
    atlas = read_atlas(out)
    acc = atlas.accuracy["test"]
    print(f"atlas {out}: {len(atlas.prototypes)} prototypes ({atlas.named} named), {len(atlas.heatmaps)} heatmaps, "
          f"{len((atlas.doc.get('predictions') or {}).get('items', []))} predictions, "
          f"test accuracy {'-' if acc is None else f'{acc:.3f}'}, {time.perf_counter() - start:.1f} s")
    return 0
