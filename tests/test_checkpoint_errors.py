"""A file that is not a checkpoint: the one error line says what the file is and what was expected."""
from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import CheckpointError
from core.training.checkpoint import load_checkpoint


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def _refusal(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "expected a checkpoint saved by this toolkit" in message
    return message


def test_text_file_is_named_as_text(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("epoch 3: accuracy 0.81\n")
    message = _refusal(path)
    assert "a text file (starting 'epoch 3: accuracy 0.81')" in message
    assert "(101)" not in message


@pytest.mark.parametrize("make, expected", [
    (lambda p: p.write_bytes(b""), "the file is empty"),
    (lambda p: zipfile.ZipFile(p, "w").writestr("notes.txt", "hi"), "a zip archive that is not a PyTorch checkpoint"),
    (lambda p: p.write_bytes(pickle.dumps({"w": _Evil()})), "a Python pickle that weights-only loading refuses"),
    (lambda p: torch.save({"obj": _Evil()}, p), "a PyTorch archive that weights-only loading refuses"),
    (lambda p: Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p, format="PNG"), "a PNG image"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy").rename(p), "a NumPy .npy array"),
    (lambda p: p.write_bytes(bytes(range(200, 256)) * 4), "a binary file of unknown type"),
])
def test_other_files_are_named(tmp_path, make, expected):
    path = tmp_path / "weights.pth"
    make(path)
    assert expected in _refusal(path)
