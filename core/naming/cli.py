"""`python -m core name`: name any model's prototypes from CUB attributes.

Reads the CUB annotations and a nearest-patch file (FORMATS.md §3: per prototype its
nearest patches as image ids and boxes in original pixels; an atlas.json works too) and
writes the names file with the evidence. Every rule of SPEC §4 is an option.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from common.atomic import write_atomic
from core.naming.naming import check_image_ids, name_prototypes, names_document, read_nearest_file
from core.naming.rules import NamingRules


def build_parser() -> argparse.ArgumentParser:
    d = NamingRules()
    p = argparse.ArgumentParser(prog="python -m core name", description=__doc__.splitlines()[0])
    p.add_argument("--cub-root", required=True, help="CUB-200-2011 archive root or CUB_200_2011/ folder")
    p.add_argument("--nearest", required=True, help="nearest-patch JSON file (FORMATS.md §3) or an atlas.json")
    p.add_argument("--out", required=True, help="names JSON file to write")
    p.add_argument("--k", type=int, default=d.k, help="nearest patches looked at (default %(default)s)")
    p.add_argument("--min-certainty", type=int, default=d.min_certainty,
                   help="per-image certainty at least (1..4; 3 = probably; default %(default)s)")
    p.add_argument("--class-threshold", type=float, default=d.class_threshold,
                   help="keep attributes holding for this fraction of a class's images (default %(default)s)")
    p.add_argument("--class-split", choices=["test", "train", "all"], default=d.class_split,
                   help="images counted for the class threshold (default %(default)s)")
    p.add_argument("--part-consistency", type=int, default=None,
                   help=f"patches that must fall on the same part (default {d.part_consistency} of k={d.k}, "
                        f"i.e. 80%% of k rounded up)")
    p.add_argument("--part-distance-factor", type=float, default=d.part_distance_factor,
                   help="accept a part within this many box half-diagonals of the centre (default %(default)s)")
    p.add_argument("--cell-margin", type=float, default=d.cell_margin,
                   help="patches with a cell_box: accept a part inside the cell grown by this many cells "
                        "(default %(default)s)")
    p.add_argument("--whole-bird-parts", type=int, default=d.whole_bird_parts,
                   help="a box holding this many distinct parts is the whole bird; 0 disables (default %(default)s)")
    p.add_argument("--min-support", type=float, default=d.min_support,
                   help="attribute must hold for this fraction of the agreeing patches (default %(default)s)")
    p.add_argument("--max-name-attributes", type=int, default=d.max_name_attributes,
                   help="attributes in a name (default %(default)s)")
    p.add_argument("--keep-sides", action="store_true", help="do not merge left/right eye, wing, leg")
    p.add_argument("--any-source", action="store_true",
                   help="do not require the first (nearest, source) patch to be on the agreed part and "
                        "every name attribute to hold on its image")
    return p


def rules_from_args(args) -> NamingRules:
    try:
        extra = {} if args.part_consistency is None else {"part_consistency": args.part_consistency}
        return NamingRules.for_k(args.k, min_certainty=args.min_certainty, class_threshold=args.class_threshold,
                           class_split=args.class_split, **extra,
                           part_distance_factor=args.part_distance_factor, cell_margin=args.cell_margin,
                           whole_bird_parts=args.whole_bird_parts,
                           min_support=args.min_support, max_name_attributes=args.max_name_attributes,
                           merge_sides=not args.keep_sides, source_must_hold=not args.any_source)
    except ValueError as exc:
        from core.errors import UserFacingError
        raise UserFacingError(f"naming rule: {exc}") from None


def write_json_atomic(path: Path, doc: dict) -> None:
    """Write next to the target, then rename: a failure leaves no half-written file."""
    write_atomic(path, json.dumps(doc, indent=1))


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    rules = rules_from_args(args)
    prototypes = read_nearest_file(args.nearest)
    from core.data.cub import read_cub_annotations
    ann = read_cub_annotations(args.cub_root)
    check_image_ids(prototypes, ann, args.nearest)
    records = name_prototypes(ann, prototypes, rules)
    doc = names_document(records, rules, cub_root=str(args.cub_root), nearest_file=str(args.nearest))
    write_json_atomic(Path(args.out), doc)
    counts = Counter(r["status"] for r in records)
    print(f"named {counts.get('named', 0)} of {len(records)} prototypes "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}) -> {args.out}")
    return 0
