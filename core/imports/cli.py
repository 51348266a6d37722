"""`python -m core import-checkpoint --official PATH --kind protopool|protopnet|protopshare|pipnet --out OURS.pt`.

Turns a checkpoint trained with the authors' code (a state dict, or a whole pickled
model read without running its pickle) into a checkpoint of this toolkit
(FORMATS.md §2), so it can be evaluated, explained, put into atlases and scored.
PIP-Net (M-Nauta/PIPNet's saved dict with `model_state_dict`, with or without `module.`
prefixes) goes through core.pipnet.official.load_official_pipnet; `--net` names a ConvNeXt
variant the weights cannot tell apart (convnext_tiny_26 | convnext_tiny_13).
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from common import cli as options
from core.imports.convert import KINDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core import-checkpoint", description=__doc__.splitlines()[0])
    p.add_argument("--official", type=Path, required=True, help="the official checkpoint (.pth / .pt)")
    p.add_argument("--kind", required=True, choices=(*KINDS, "pipnet"))
    p.add_argument("--net", help="pipnet: the authors' --net (e.g. convnext_tiny_13); default: read from the weights "
                                 "(ConvNeXt: convnext_tiny_26)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint of this toolkit to write")
    p.add_argument("--data", type=Path,
                   help="the data set it was trained on (CUB-format root): class names and data config")
    p.add_argument("--dataset", default="cub", help="cub | cars | folder (with --data; default %(default)s)")
    p.add_argument("--class-names", type=Path, help="text file, one class name per line (instead of --data)")
    p.add_argument("--image-size", type=int, default=224, help="input size it was trained at (official: 224)")
    p.add_argument("--class-identity", metavar="blocks|last-layer|FILE",
                   help="ProtoPNet/ProtoPShare state dict without prototype_class_identity (e.g. pruned or merged): "
                        "'blocks' = ProtoPNet's order j // (M/C), 'last-layer' = each prototype's strongest "
                        "last-layer class, or a file (one line per prototype: its 0-based classes; or .npy); "
                        "default: the pickled identity, else inferred (an error when the two rules disagree)")
    p.add_argument("--no-crop", action="store_true",
                   help="it was trained on uncropped images (the official CUB scripts crop to the boxes)")
    options.add_overwrite(p, "--out", dest="force")
    return p


def _class_names(args, num_classes: int) -> list[str]:
    from core.errors import UserFacingError

    if args.class_names is not None:
        try:
            names = [line.strip() for line in args.class_names.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise UserFacingError(f"--class-names {args.class_names}: cannot read ({exc.strerror})") from None
    elif args.data is not None:
        from core.data import load_dataset
        names = list(load_dataset(args.dataset, args.data, split="test", image_size=args.image_size).class_names)
    else:
        names = [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        src = args.class_names or args.data
        raise UserFacingError(f"{src}: {len(names)} classes, but the official model has {num_classes}")
    return names


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from core.errors import UserFacingError
    from core.imports.convert import build_imported
    from core.unpickle import official_contents
    from core.training.checkpoint import save_checkpoint
    from core.training.config import Config

    if args.out.exists() and not args.force:
        raise UserFacingError(f"{args.out}: already exists (pass --force to replace it)")
    if args.image_size < 1:
        raise UserFacingError(f"--image-size must be positive, got {args.image_size}")
    identity = args.class_identity
    if args.net is not None and args.kind != "pipnet":
        raise UserFacingError("--net: only for --kind pipnet")
    if identity is not None and args.kind in ("protopool", "pipnet"):
        raise UserFacingError("--class-identity: only for --kind protopnet or protopshare (ProtoPool's slots and "
                              "PIP-Net's class weights say it)")
    if identity is not None and identity not in ("blocks", "last-layer"):
        from core.imports.convert import read_class_identity
        identity = read_class_identity(identity)
    if args.kind == "pipnet":
        from core.pipnet.official import load_official_pipnet

        model, report = load_official_pipnet(args.official, net=args.net)
        model_cfg = model.config.to_dict()
    else:
        state, extras = official_contents(args.official)
        model, model_cfg, report = build_imported(state, extras, args.kind, str(args.official), identity)
    names = _class_names(args, model.num_classes)
    cfg = Config.from_dict({"name": f"imported-{args.kind}", "model": model_cfg,
                            "data": {"dataset": args.dataset, "root": str(args.data.resolve()) if args.data else "",
                                     "image_size": args.image_size, "crop_to_bbox": not args.no_crop}})
    digest = hashlib.sha256(args.official.read_bytes()).hexdigest()
    history = [{"phase": "import", "source": str(args.official.resolve()), "sha256": digest, **report}]
    save_checkpoint(args.out, model, config=cfg.to_dict(), class_names=names, history=history)
    gap = report.get("assignment_gap")
    print(f"imported {args.kind} ({report['backbone']}, {report['num_prototypes']} prototypes, "
          f"{report['num_classes']} classes) -> {args.out}")
    if gap is not None and gap > 1e-6:
        print(f"note: the official slot assignment is not binarised (largest 1 - max softmax = {gap:.3g}); "
              "the imported model uses the hard assignment, so its logits differ from the official soft ones "
              "(python -m core evaluate --assignment soft gives the official soft evaluation)")
    return 0
