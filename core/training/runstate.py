"""What makes a run repeatable and resumable: seeds per epoch, RNG states, metrics files.

Every epoch re-seeds all RNGs from (seed, phase, epoch), so a resumed epoch is the epoch
an uninterrupted run would have trained; RNG states are stored as tensors and plain lists,
loadable with weights_only=True.
"""
from __future__ import annotations

import csv
import io
import os
import random
import zlib
from pathlib import Path

import numpy as np
import torch

# the metrics.csv columns every run has; an architecture's own loss terms follow them
METRIC_COLUMNS = ["phase", "epoch", "global_epoch", "tau", "lr", "loss", "cross_entropy", "cluster",
                  "separation", "orthogonality", "l1", "local_reconstruction", "train_accuracy", "val_accuracy", "seconds"]
SCALARS = ("loss", "cross_entropy", "cluster", "separation", "orthogonality", "l1", "train_accuracy",
           "val_accuracy", "tau")


def epoch_seed(seed: int, phase: str, epoch: int) -> int:
    return zlib.crc32(f"{seed}:{phase}:{epoch}".encode()) & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict:
    """All RNG states as tensors / plain lists (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
             "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    internal, version, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def metric_columns(history: list[dict]) -> list[str]:
    """METRIC_COLUMNS, then any other key the history's rows have (an architecture's own terms)."""
    extra = sorted({k for row in history for k in row} - set(METRIC_COLUMNS))
    return METRIC_COLUMNS + extra


def write_metrics(path: Path, history: list[dict]) -> None:
    """metrics.csv, one row per epoch, written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=metric_columns(history), extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def open_tensorboard(out_dir: Path, enabled: bool):
    """A SummaryWriter under out_dir/tensorboard, or None (off, or tensorboard not installed)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: tensorboard not installed
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def log_scalars(writer, row: dict) -> None:
    for key in SCALARS + tuple(k for k in row if k not in METRIC_COLUMNS):
        if row.get(key) is not None:
            writer.add_scalar(f"{row['phase']}/{key}", row[key], row["global_epoch"])
