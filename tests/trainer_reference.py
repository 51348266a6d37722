"""Tiny fixed-seed training runs whose loss history and final logits pin the trainer down.

`python tests/trainer_reference.py record` writes tests/data/trainer_reference.pt from the
code in the tree; tests/test_trainer_reference.py runs the same runs and compares. The
reference was recorded before the trainer became a phase runner over the architecture
contract (issue 29), so the test proves the refactoring changed no number.

Each run covers a path of the trainer: ProtoPool with backbone pretraining (local
reconstruction head), k-means++ seeding on the pretraining head's evidence cells, the
tau schedule, projection and the last layer; ProtoPNet with mixup and augmentation.
One CPU thread, so the figures do not depend on the machine's thread count.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "trainer_reference.pt"

RUNS: dict[str, tuple[str, list[str]]] = {
    "protopool": ("tiny-synthetic.yaml", [
        "train.pretrain.epochs=1", "train.warmup.epochs=1", "train.joint.epochs=2", "train.last_layer.epochs=1",
        "train.tau.end_epoch=1", "train.prototype_init_evidence=0.5", "model.num_prototypes=6", "model.num_slots=2",
        "data.batch_size=8"]),
    "protopnet": ("protopnet-tiny-synthetic.yaml", [
        "train.warmup.epochs=1", "train.joint.epochs=2", "train.last_layer.epochs=1", "data.mixup=true",
        "data.augment=true", "model.prototypes_per_class=2", "train.joint.patience=1"]),
}
HISTORY_KEYS = ("loss", "cross_entropy", "cluster", "separation", "orthogonality", "l1", "local_reconstruction",
                "train_accuracy", "val_accuracy", "tau", "lr")


def make_birds(base: Path) -> Path:
    from core.data import make_synthetic

    return make_synthetic(base / "birds", classes=3, images_per_class=8, size=64, seed=0)


def run(name: str, birds: Path, out: Path) -> dict:
    """Train run `name` into `out`; its history figures and the final model's logits on the
    first 8 test images."""
    from core.data import load_dataset
    from core.training.checkpoint import load_checkpoint
    from core.training.config import load_config
    from core.training.loop import Trainer

    config_file, overrides = RUNS[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = load_config(ROOT / "configs" / config_file,
                             [f"data.root={birds}", "runtime.progress=false", "runtime.tensorboard=false",
                              "runtime.device=cpu", "train.paper=", *overrides])
        path = Trainer(config, out).run()
        model, meta = load_checkpoint(path)
        test = load_dataset("cub", str(birds), split="test", image_size=64)
        images = torch.stack([test[i][0] for i in range(8)])
        with torch.no_grad():
            logits = model.eval()(images).logits
    finally:
        torch.set_num_threads(threads)
    history = [{"phase": h["phase"], "epoch": h["epoch"],
                **{k: (None if h.get(k) is None else float(h[k])) for k in HISTORY_KEYS}} for h in meta["history"]]
    return {"history": history, "logits": logits.detach().clone(),
            "prototypes": model.prototypes.detach().clone()}


def compare(a: dict, b: dict) -> float:
    """Largest absolute difference between two runs' figures (inf if their shapes differ)."""
    if [(h["phase"], h["epoch"]) for h in a["history"]] != [(h["phase"], h["epoch"]) for h in b["history"]]:
        return float("inf")
    worst = 0.0
    for ha, hb in zip(a["history"], b["history"]):
        for key in HISTORY_KEYS:
            if (ha[key] is None) != (hb[key] is None):
                return float("inf")
            if ha[key] is not None:
                worst = max(worst, abs(ha[key] - hb[key]))
    for key in ("logits", "prototypes"):
        if a[key].shape != b[key].shape:
            return float("inf")
        worst = max(worst, float((a[key] - b[key]).abs().max()))
    return worst


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        birds = make_birds(Path(tmp))
        results = {name: run(name, birds, Path(tmp) / name) for name in RUNS}
    if argv[:1] == ["record"]:
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        torch.save(results, REFERENCE)
        print(f"wrote {REFERENCE}")
        return 0
    reference = torch.load(REFERENCE, weights_only=True)
    for name in RUNS:
        print(f"{name}: max |difference| to the reference {compare(results[name], reference[name]):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
