"""`ImageDataset`: records -> model inputs (crop, resize, optional augmentation, normalise).

One class serves every reader (CUB, Cars, image folders): a reader only has to produce
`ImageRecord`s and class names. The dataset keeps no open file handles (each item opens
its file and closes it), so it pickles into DataLoader workers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from core.data.geometry import Geometry, crop_box_for
from core.data.records import ImageRecord
from core.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def open_rgb(path: Path) -> Image.Image:
    """Decode an image file fully as RGB; an unreadable file is a DataError naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB") if im.mode != "RGB" else im.copy()
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"unreadable image {path}: {exc}") from None


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) from the file header only (no pixel decoding)."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"unreadable image {path}: {exc}") from None


class ImageDataset(torch.utils.data.Dataset):
    """A split of a data set as model inputs.

    `ds[i]` -> (float32 tensor [3, S, S] normalised with ImageNet mean/std, label, i).
    `ds.load_rgb(i)` -> the same pixels before augmentation and normalisation (uint8).
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        class_names: Sequence[str],
        *,
        image_size: int = 224,
        crop_to_bbox: bool = True,
        augment: bool = False,
        name: str = "",
        split: str = "",
        root: Path | None = None,
    ) -> None:
        if image_size <= 0:
            raise DataError(f"image_size must be positive, got {image_size}")
        self.records = list(records)
        self.class_names = list(class_names)
        self.image_size = int(image_size)
        self.crop_to_bbox = bool(crop_to_bbox)
        self.augment = bool(augment)
        self.name = name
        self.split = split
        self.root = root
        self._transform = None
        if self.augment:
            from core.data.augment import train_augmentation

            self._transform = train_augmentation()
        std = np.asarray(IMAGENET_STD, dtype=np.float32)
        self._scale = (1.0 / (255.0 * std)).reshape(3, 1, 1).astype(np.float32)
        self._shift = (-np.asarray(IMAGENET_MEAN, dtype=np.float32) / std).reshape(3, 1, 1).astype(np.float32)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labels(self) -> np.ndarray:
        """0-based labels of all records, in record order."""
        return np.fromiter((r.label for r in self.records), dtype=np.int64, count=len(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def _crop_resize(self, i: int) -> tuple[np.ndarray, Geometry]:
        rec = self.records[i]
        im = open_rgb(rec.path)
        crop = crop_box_for(rec.bbox, im.size, self.crop_to_bbox)
        s = self.image_size
        out = im.resize((s, s), Image.Resampling.BILINEAR, box=crop)
        return np.asarray(out, dtype=np.uint8), Geometry(crop, s, im.size)

    def load_rgb(self, i: int) -> np.ndarray:
        """uint8 [S, S, 3]: the un-normalised, never augmented model input of item i."""
        return self._crop_resize(i)[0]

    def geometry(self, i: int) -> Geometry:
        """Geometry between model-input pixels of item i and its original file."""
        rec = self.records[i]
        size = image_size_of(rec.path)
        return Geometry(crop_box_for(rec.bbox, size, self.crop_to_bbox), self.image_size, size)

    def normalize(self, chw) -> torch.Tensor:
        """uint8 [3, S, S] (array or tensor) -> float32 tensor normalised with ImageNet mean/std.

        Done in numpy on purpose: torch's intra-op threads make this small per-item work
        many times slower when the main process shares a few busy cores.
        """
        arr = chw.numpy() if isinstance(chw, torch.Tensor) else np.asarray(chw)
        return torch.from_numpy(arr.astype(np.float32) * self._scale + self._shift)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        rgb, _ = self._crop_resize(i)
        chw = np.ascontiguousarray(rgb.transpose(2, 0, 1))
        if self._transform is not None:
            chw = self._augment(torch.from_numpy(chw))
        return self.normalize(chw), self.records[i].label, i

    def _augment(self, chw: torch.Tensor) -> torch.Tensor:
        """Run the augmentation single-threaded: on one small image, torch's intra-op
        threads cost ~10x more than they save (measured in bench/bench_data.py). DataLoader
        workers are single-threaded already; in the main process we switch for the call."""
        n = torch.get_num_threads()
        if n == 1 or torch.utils.data.get_worker_info() is not None:
            return self._transform(chw)
        torch.set_num_threads(1)
        try:
            return self._transform(chw)
        finally:
            torch.set_num_threads(n)

    def __repr__(self) -> str:
        return (f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"classes={self.num_classes}, image_size={self.image_size}, augment={self.augment})")
