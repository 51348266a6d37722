"""A small real workspace for the app tests, built once per test process.

`app.demo.ensure_demo` does the work: the tests only put a smaller synthetic data set
and two randomly initialised tiny models where the demo expects its data and
checkpoints, so the demo's own atlas and study steps run for real (in seconds) and the
slow training step is skipped. Each test gets a copy, so answers never leak between tests.

Like the shipped demo checkpoints, the tiny checkpoints record their data root relative
to the folder they were "trained" from (`data/synthetic-birds`, the workspace here), and
the atlases record their checkpoint and data relative to themselves: a copy of the
workspace anywhere, opened from any current folder, must find its own files.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

PASSWORD = "test-password-123"


def _tiny_model(similarity: str, num_classes: int, seed: int):
    import torch

    from core.architectures import build_model
    from core.model.config import ModelConfig

    torch.manual_seed(seed)
    cfg = ModelConfig(architecture="protopool", backbone="resnet18", weights="none", truncate="layer2",
                      prototype_depth=16, num_prototypes=16, num_slots=2, num_classes=num_classes,
                      similarity=similarity)
    model = build_model(cfg).eval()
    with torch.no_grad():  # some off-class weight, so contributions are not all alike
        model.last_layer.weight.add_(0.1 * torch.randn_like(model.last_layer.weight))
    return cfg, model


@functools.lru_cache(maxsize=1)
def template() -> Path:
    """Build the workspace once (about 10 s on two cores) and return its folder."""
    import torch

    from core.data import load_dataset
    from core.data.synthetic import make_synthetic
    from app.demo import VARIANTS, ensure_demo
    from core.training.checkpoint import save_checkpoint
    from core.training.projection import project_prototypes

    base = Path(tempfile.mkdtemp(prefix="app-ws-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    home = base / "home"
    root = make_synthetic(home / "data" / "synthetic-birds", classes=3, images_per_class=8, size=96, seed=1)
    data = {"dataset": "cub", "root": "data/synthetic-birds", "image_size": 64, "crop_to_bbox": True,
            "val_fraction": 0.1, "split_seed": 0}
    train = load_dataset("cub", root, split="train", image_size=64)
    with torch.inference_mode(False):
        for i, v in enumerate(VARIANTS):
            cfg, model = _tiny_model(v.similarity, train.num_classes, seed=i)
            records = project_prototypes(model, train, batch_size=16)
            save_checkpoint(home / "checkpoints" / v.key / "model.pt", model,
                            config={"model": cfg.to_dict(), "data": data}, class_names=train.class_names,
                            history=[{"phase": "last_layer", "val_accuracy": 0.5}], projection=records)
    ensure_demo(home, progress=False)
    return home


def workspace(dest: Path) -> Path:
    """A fresh copy of the template workspace at `dest`; its atlases and checkpoints refer to
    the copy's own checkpoints and data (relative paths, FORMATS.md §0)."""
    shutil.copytree(template(), dest, symlinks=True)
    return dest
