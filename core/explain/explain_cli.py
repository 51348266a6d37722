"""`python -m core explain`: why does the model call this image class X? (the app's
"Explain an image" page on the command line; SPEC §3).

    python -m core explain --atlas atlases/protopool-birds --test-index 0
    python -m core explain --checkpoint runs/m/model.pt --image bird.jpg --class 3 --out expl/

The model is the atlas's checkpoint (or `--checkpoint`); the image is a test image of
the model's data set (`--test-index` or `--image-id`) or a PNG/JPEG file (`--image`,
checked from its header like an upload, read whole with the data set's preprocessing).
Printed: the prediction with the five largest logits, then per explained class the
largest contributions (similarity x weight, which sum to the logit). `--json` writes
the whole explanation; `--out DIR` writes explanation.json, explanation.html (a bar
chart per class, Plotly embedded so it opens offline) and the overlays of the largest contributions (PNG).
"""
from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

from common import cli as options
from common.atomic import write_atomic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core explain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--atlas", type=Path, help="atlas folder: its checkpoint, data set and prototype names")
    model.add_argument("--checkpoint", type=Path, help="checkpoint file (no names without an atlas)")
    image = p.add_mutually_exclusive_group(required=True)
    image.add_argument("--image", type=Path, help="a PNG or JPEG file (whole image, no box)")
    image.add_argument("--test-index", type=int, help="position in the test split (0-based)")
    image.add_argument("--image-id", type=int, help="image id of a test image (images.txt)")
    p.add_argument("--data", type=Path, help="data set folder (default: the atlas's, else the checkpoint's)")
    p.add_argument("--class", dest="classes", type=int, action="append", default=[],
                   help="also explain this class index (repeatable)")
    p.add_argument("--top", type=int, default=10, help="contributions printed per class (default %(default)s)")
    p.add_argument("--json", type=Path, help="write the explanation as JSON here")
    p.add_argument("--out", type=Path, help="folder for explanation.json, bar charts (HTML) and overlays (PNG)")
    options.add_device(p, default="cpu")
    return p


def _model_and_data(args):
    from common.atlas import read_atlas
    from core.errors import FormatError, UserFacingError
    from core.training.checkpoint import load_checkpoint

    names: list[str | None] = []
    data_root = args.data
    if args.atlas is not None:
        atlas = read_atlas(args.atlas, check_files=False, error=FormatError)
        checkpoint = atlas.created_from_path("checkpoint")
        if checkpoint is None:
            raise UserFacingError(f"{args.atlas}: this atlas records no checkpoint (an imported method); "
                                  "no model can explain new images")
        if data_root is None:
            try:
                found = atlas.created_from_path("data_root")
            except UserFacingError:
                found = None
            data_root = found if found is not None and found.is_dir() else None
        names = atlas.prototype_names()
    else:
        checkpoint = args.checkpoint
    model, meta = load_checkpoint(checkpoint, map_location="cpu")
    return model, meta, Path(checkpoint), data_root, names


def single_image_dataset(path: Path, like):
    """A one-image data set read like `like` (size, normalisation), without a box; the
    file is checked from its header first (common.images limits)."""
    from common.errors import ToolkitError
    from common.images import check_image_bytes, check_size
    from core.data.base import ImageDataset
    from core.data.records import ImageRecord
    from core.errors import DataError

    try:
        check_size(path.stat().st_size)
        check_image_bytes(path.read_bytes())
    except FileNotFoundError:
        raise DataError(f"--image: file not found: {path}") from None
    except ToolkitError as exc:
        raise DataError(f"--image: {path}: {exc}") from None
    return ImageDataset([ImageRecord(image_id=0, path=path, label=-1, bbox=None)], like.class_names,
                        image_size=like.image_size, crop_to_bbox=False, name="upload")


def explanation_document(expl, class_names, names, *, checkpoint: Path, image: str) -> dict:
    """The explanation as plain JSON (per class: every contribution, largest first)."""
    def name(p):
        return names[p] if p < len(names) else None

    return {"format": "protoproto-explanation", "version": 1, "checkpoint": str(checkpoint), "image": image,
            "image_id": expl.image_id, "true_label": expl.true_label if expl.true_label >= 0 else None,
            "predicted": expl.predicted, "predicted_name": class_names[expl.predicted],
            "logits": [float(x) for x in expl.logits],
            "classes": [{"label": ce.label, "name": ce.class_name, "logit": ce.logit, "sum": ce.total,
                         "rows": [{"prototype": r.prototype, "name": name(r.prototype),
                                   "slot": None if r.slot is None else list(r.slot), "own": r.own,
                                   "similarity": r.similarity, "weight": r.weight, "contribution": r.contribution}
                                  for r in sorted(ce.rows, key=lambda r: -abs(r.contribution))]}
                        for ce in expl.classes.values()]}


def _write_out(out: Path, doc: dict, expl, names) -> None:
    from core.explain.global_views import contributions_figure
    from core.explain.overlay import draw_box
    from core.png import encode_png

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "explanation.json", json.dumps(doc, indent=1))
    write_atomic(out / "input.png", encode_png(expl.image_rgb))
    parts = []
    for i, ce in enumerate(expl.classes.values()):
        fig = contributions_figure(ce.rows, ce.class_name, ce.logit, prototype_names=names)
        parts.append(fig.to_html(include_plotlyjs=(i == 0), full_html=False))   # Plotly inline once: offline
        for row in sorted(ce.rows, key=lambda r: -abs(r.contribution))[:3]:
            write_atomic(out / f"class-{ce.label}-prototype-{row.prototype}.png",
                         encode_png(draw_box(expl.overlay(row), expl.box(row))))
    title = html.escape(f"Explanation of {doc['image']}: {doc['predicted_name']}")
    write_atomic(out / "explanation.html", f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}"
                 f"</title></head><body><h1>{title}</h1>\n" + "\n".join(parts) + "\n</body></html>\n")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import numpy as np

    from core.device import resolve_device
    from core.errors import UserFacingError
    from core.explain.local import explain_image
    from core.training.data import checkpoint_dataset

    if args.top < 1:
        raise UserFacingError(f"--top must be positive, got {args.top}")
    model, meta, checkpoint, data_root, names = _model_and_data(args)
    test = checkpoint_dataset(meta, "test", root=str(data_root) if data_root else None, checkpoint=checkpoint,
                              source=str(checkpoint))
    if test.num_classes != model.num_classes:
        raise UserFacingError(f"{test.root}: has {test.num_classes} classes but {checkpoint} was trained on "
                              f"{model.num_classes}; give the data set it was trained on (--data)")
    for c in args.classes:
        if not 0 <= c < model.num_classes:
            raise UserFacingError(f"--class: {c} is not a class index (0..{model.num_classes - 1})")
    if args.image is not None:
        dataset, index, image = single_image_dataset(args.image, test), 0, str(args.image)
    else:
        if args.image_id is not None:
            found = [i for i, r in enumerate(test.records) if r.image_id == args.image_id]
            if not found:
                raise UserFacingError(f"--image-id: image {args.image_id} is not in the test split of {test.root}")
            index = found[0]
        else:
            index = args.test_index
            if not 0 <= index < len(test):
                raise UserFacingError(f"--test-index: {index} is out of range (the test split has {len(test)} images)")
        dataset, image = test, str(test.records[index].path)
    paths = {int(r.image_id): r.path
             for r in checkpoint_dataset(meta, "trainval", root=str(data_root) if data_root else None,
                                         checkpoint=checkpoint, source=str(checkpoint)).records}
    expl = explain_image(model, dataset, index, classes=args.classes, projection=meta.get("projection"),
                         image_paths=paths, device=resolve_device(args.device))
    classes = test.class_names
    doc = explanation_document(expl, classes, names, checkpoint=checkpoint, image=image)

    print(f"image: {image}")
    if args.image is None:
        print(f"true class: {classes[expl.true_label]}")
    print(f"prediction: {classes[expl.predicted]}")
    probs = np.exp(expl.logits - expl.logits.max())
    probs /= probs.sum()
    for i in np.argsort(-expl.logits)[:5]:
        print(f"  {classes[i]:<30} logit {expl.logits[i]:9.3f}  softmax {probs[i]:.3f}")
    for entry in doc["classes"]:
        print(f"\n{entry['name']}: logit {entry['logit']:.3f} = sum of {len(entry['rows'])} contributions "
              f"({entry['sum']:.3f})")
        print(f"  {'prototype':>9} {'slot':>6} {'own':>4} {'similarity':>10} {'weight':>8} {'contribution':>12}  name")
        for r in entry["rows"][:args.top]:
            slot = "" if r["slot"] is None else f"{r['slot'][0]}/{r['slot'][1]}"
            print(f"  {r['prototype']:>9} {slot:>6} {'yes' if r['own'] else 'no':>4} {r['similarity']:10.4f} "
                  f"{r['weight']:8.4f} {r['contribution']:12.4f}  {r['name'] or ''}")
    if args.json:
        write_atomic(args.json, json.dumps(doc, indent=1))
    if args.out:
        _write_out(args.out, doc, expl, names)
        print(f"\nwrote {args.out}")
    return 0
