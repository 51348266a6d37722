"""Which classes share prototypes, from an atlas: `python -m core sharing` and the app's
"Sharing" page (both take their numbers from `prototype_classes` and `sharing_document`).

    python -m core sharing --atlas atlases/protopool-birds --out reports/sharing

Reads only the atlas (each prototype's classes and name). Writes into `--out`:
`sharing.json` (classes, the prototypes shared by two or more classes, the class graph's
edges weighted by shared prototypes, how many prototypes serve how many classes) and
`sharing.html` (the graph, the histogram and the shared-prototype table; Plotly is
embedded, so the page opens offline). Prints a short summary.
"""
from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

from common.atlas import Atlas
from common.atomic import write_atomic

FORMATS = ("html", "json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core sharing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--atlas", type=Path, required=True, help="atlas folder")
    p.add_argument("--out", type=Path, required=True, help="folder for sharing.json and sharing.html")
    p.add_argument("--format", default="html,json", help="comma-separated subset of html,json (default %(default)s)")
    return p


def prototype_classes(atlas: Atlas) -> tuple[list[list[int]], list[str | None]]:
    """(classes of each prototype id, name of each prototype id); ids absent are empty."""
    return atlas.prototype_classes(), atlas.prototype_names()


def sharing_document(atlas: Atlas) -> dict:
    from core.explain import global_views as gv

    class_names = atlas.class_names
    classes, names = prototype_classes(atlas)
    graph = gv.sharing_graph(classes, len(class_names))
    edges = sorted(({"a": int(a), "b": int(b), "shared": int(d["weight"])} for a, b, d in graph.edges(data=True)),
                   key=lambda e: (-e["shared"], e["a"], e["b"]))
    used = [cs for cs in classes if cs]
    return {"format": "protoproto-sharing", "version": 1, "atlas": atlas.name, "classes": list(class_names),
            "prototypes": len(atlas.prototypes),
            "shared": [{"prototype": p, "name": names[p], "classes": cs} for p, cs in gv.shared_prototypes(classes)],
            "class_pairs": edges,
            "classes_per_prototype": {str(k): v for k, v in gv.sharing_counts(
                [classes[p] for p in atlas.prototypes]).items()},
            "mean_classes_per_used_prototype": (sum(len(cs) for cs in used) / len(used)) if used else 0.0}


def sharing_html(atlas: Atlas) -> str:
    from core.explain import global_views as gv

    class_names = atlas.class_names
    classes, names = prototype_classes(atlas)
    figures = [gv.sharing_graph_figure(classes, class_names), gv.sharing_histogram_figure(classes),
               gv.shared_prototypes_figure(classes, class_names, names)]
    parts = [fig.to_html(include_plotlyjs=(i == 0), full_html=False) for i, fig in enumerate(figures)]
    title = html.escape(f"Sharing: {atlas.name}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1>\n" + "\n".join(parts) + "\n</body></html>\n")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from common.atlas import read_atlas
    from core.errors import FormatError, UserFacingError

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise UserFacingError(f"--format: unknown {', '.join(unknown) or '(empty)'}; use a subset of html,json")
    atlas = read_atlas(args.atlas, check_files=False, error=FormatError)
    if not atlas.prototypes:
        raise UserFacingError(f"{args.atlas}: this atlas holds imported heatmaps only (no prototypes to share)")
    doc = sharing_document(atlas)
    if "json" in formats:
        write_atomic(args.out / "sharing.json", json.dumps(doc, indent=1))
    if "html" in formats:
        write_atomic(args.out / "sharing.html", sharing_html(atlas))
    print(f"{doc['prototypes']} prototypes, {len(doc['shared'])} shared by 2+ classes, "
          f"{len(doc['class_pairs'])} class pairs sharing; wrote {', '.join(f'sharing.{f}' for f in formats)} "
          f"in {args.out}")
    return 0
