"""The demo models: tiny ProtoPool models on the synthetic birds, built on first use.

Two variants for the saliency study demo, named by their similarity's one spelling
(common.names.SIMILARITIES): "focal" (ProtoPool) and "protopnet" (ProtoPool without focal
similarity, the paper's ablation; "protopnet-sim", its old name, is still accepted). Both come from
configs/tiny-synthetic.yaml on the demo birds (`DEMO_BIRDS`: 10 classes x 100 images,
448 px on the longer side, so that the saliency stimuli, drawn from the original images,
need no upscaling; the model sees 64 px crops either way; seed 0). The shipped files under checkpoints/ are rebuilt by

    python -m core.training.demo --out checkpoints          (both variants, ~10 min on 2 cores)

which is the same as

    python -m core make-synthetic --out data/synthetic-birds --images-per-class 100 --size 448
    python -m core train --config configs/tiny-synthetic.yaml --out runs/demo-focal
    python -m core train --config configs/tiny-synthetic.yaml --set model.similarity=protopnet \
        --out runs/demo-protopnet

and copying each run's model.pt to the shipped file (`SHIPPED`; the protopnet variant's
file keeps its old name, demo-protopool-protopnet-sim.pt). `bench/bench_demo.py` prints their figures.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from common.names import canonical_similarity
from core.errors import UserFacingError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "tiny-synthetic.yaml"
VARIANTS = {"focal": ["model.similarity=focal"], "protopnet": ["model.similarity=protopnet"]}
# the shipped file of each variant under checkpoints/ (names from before the one spelling;
# kept, as docs and benches refer to them)
SHIPPED = {"focal": "demo-protopool-focal.pt", "protopnet": "demo-protopool-protopnet-sim.pt"}
# the birds the demo models are trained on (core.demo.ensure_data makes the same)
DEMO_BIRDS = dict(classes=10, images_per_class=100, size=448, seed=0)


def committed_demo_model(variant: str) -> Path:
    """Where the repository ships the pre-trained demo model of `variant`."""
    return REPO / "checkpoints" / SHIPPED[demo_variant(variant)]


def _matches(checkpoint: Path, data_root: Path) -> bool:
    """The shipped model was trained on these very birds (same classes, train images and boxes)."""
    from core.data import load_dataset
    from core.training.checkpoint import read_checkpoint

    payload = read_checkpoint(checkpoint)
    data = payload["config"]["data"]
    try:
        ds = load_dataset("cub", data_root, split="train", image_size=data["image_size"],
                          crop_to_bbox=data["crop_to_bbox"], val_fraction=data["val_fraction"], seed=data["split_seed"])
    except UserFacingError:
        return False
    if list(ds.class_names) != list(payload["class_names"]):
        return False
    by_index = {i: r.image_id for i, r in enumerate(ds.records)}
    projected = [r for r in payload.get("projection") or [] if r is not None]
    if not all(by_index.get(r["index"]) == r["image_id"] for r in projected):
        return False
    # Same images, same boxes: each projected prototype's cell maps back to the box stored
    # with it (birds drawn by another version of the drawing code have other boxes).
    for r in projected:
        geometry = ds.geometry(r["index"])
        x0, y0, x1, y1 = r["box"]
        cells = (round(data["image_size"] * geometry.scale[1] / (y1 - y0)),
                 round(data["image_size"] * geometry.scale[0] / (x1 - x0)))
        if not all(abs(a - b) < 1e-3 for a, b in zip(geometry.cell_to_original_box(*r["cell"], cells), r["box"])):
            return False
    return True


def demo_variant(variant: str) -> str:
    """The variant's one name (an old spelling such as "protopnet-sim" migrated)."""
    name = canonical_similarity(variant)
    if name not in VARIANTS:
        raise UserFacingError(f"demo variant {variant!r} is unknown; use one of {', '.join(VARIANTS)}")
    return name


def demo_overrides(variant: str) -> list[str]:
    return list(VARIANTS[demo_variant(variant)])


def ensure_demo_model(data_root, out_path, *, variant: str = "focal", progress: bool = True) -> Path:
    """Return `out_path`, putting the demo model there first if it is missing.

    `data_root`: the synthetic birds (generated as `DEMO_BIRDS` if the folder does not
    exist). If the repository's shipped model (checkpoints/) was trained on exactly these
    birds it is copied; otherwise the model is trained (about 8 minutes on one CPU core,
    progress bars when `progress`) and moved into place only when complete.
    """
    from core.training.checkpoint import load_checkpoint

    out_path = Path(out_path)
    if out_path.is_file():
        load_checkpoint(out_path)  # a broken file is a clear CheckpointError, never silently retrained
        return out_path
    demo_overrides(variant)   # an unknown variant fails before any work
    data_root = Path(data_root)
    if not data_root.exists():
        from core.data import make_synthetic

        make_synthetic(data_root, **DEMO_BIRDS)
    from core.training.loop import Trainer

    shipped = committed_demo_model(variant)
    if shipped.is_file() and _matches(shipped, data_root):
        out_path.parent.mkdir(parents=True, exist_ok=True)
        staged = out_path.with_name(out_path.name + ".tmp")
        shutil.copyfile(shipped, staged)
        os.replace(staged, out_path)
        return out_path
    config = load_config_for(variant, data_root, progress)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".demo-train-") as tmp:
        final = Trainer(config, Path(tmp) / "run", progress=progress).run()
        staged = out_path.with_name(out_path.name + ".tmp")
        shutil.copyfile(final, staged)
        os.replace(staged, out_path)
    return out_path


def main(argv: list[str] | None = None) -> int:
    """Rebuild the shipped demo models: `python -m core.training.demo --out checkpoints`."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m core.training.demo", description=main.__doc__)
    ap.add_argument("--out", default=str(REPO / "checkpoints"), help="folder for the shipped files (SHIPPED)")
    ap.add_argument("--data", default=None, help="the demo birds (default: made in a temporary folder)")
    ap.add_argument("--variant", nargs="*", default=list(VARIANTS))
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo-models-") as tmp:
        data = Path(a.data) if a.data else Path(tmp) / "synthetic-birds"
        if not data.exists():
            from core.data import make_synthetic

            make_synthetic(data, **DEMO_BIRDS)
        from core.training.loop import Trainer

        for variant in a.variant:
            config = load_config_for(variant, data, progress=not a.quiet)   # trains afresh, never copies
            final = Trainer(config, Path(tmp) / f"run-{variant}", progress=not a.quiet).run()
            target = out / SHIPPED[demo_variant(variant)]
            staged = target.with_name(target.name + ".tmp")
            shutil.copyfile(final, staged)
            os.replace(staged, target)
            print(f"wrote {target}")
    return 0


def load_config_for(variant: str, data_root, progress: bool = True):
    """The demo config of `variant` on the birds at `data_root`."""
    from core.training.config import load_config

    config = load_config(CONFIG, demo_overrides(variant) + [f"data.root={data_root}", f"runtime.progress={progress}"])
    config.name = f"demo-{demo_variant(variant)}"
    return config


if __name__ == "__main__":
    raise SystemExit(main())
