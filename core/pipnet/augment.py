"""PIP-Net's two-view augmentation (authors' util/data.py), with torchvision transforms.

Per image, a *shared* part runs once (resize a little larger, a shape TrivialAugment
op, horizontal flip, a slightly zoomed random-resized crop), then a *per-view* part runs
twice independently (a colour TrivialAugment op, a random crop to the input size,
tensor, ImageNet normalisation). So the two views show the same bird in the same pose
and place up to a few pixels, in different colours: the alignment loss then asks the
same patch to be the same prototype under colour changes and small shifts.

Sizes (S = image size): CUB/birds: shared resize S+8 (first stage: S+32, "the bird
need not be fully visible"), crop S+4; Cars: resize S+32 in both stages, and its
per-view colour op also solarizes and changes colour saturation more strongly.
"""
from __future__ import annotations

import torch
from torchvision import transforms

from core.data.base import IMAGENET_MEAN, IMAGENET_STD

DATASETS = ("cub", "cars")


class ShapeTrivialAugment(transforms.TrivialAugmentWide):
    """TrivialAugment restricted to geometry: identity, shear x/y up to 0.5, translate up to
    `max_translate` px (authors: 16 at 224 px), rotate up to 60 degrees."""

    def __init__(self, max_translate: float = 16.0, **kwargs):
        super().__init__(**kwargs)
        self.max_translate = float(max_translate)

    def _augmentation_space(self, num_bins: int):
        return {
            "Identity": (torch.tensor(0.0), False),
            "ShearX": (torch.linspace(0.0, 0.5, num_bins), True),
            "ShearY": (torch.linspace(0.0, 0.5, num_bins), True),
            "TranslateX": (torch.linspace(0.0, self.max_translate, num_bins), True),
            "TranslateY": (torch.linspace(0.0, self.max_translate, num_bins), True),
            "Rotate": (torch.linspace(0.0, 60.0, num_bins), True),
        }


class ColourTrivialAugment(transforms.TrivialAugmentWide):
    """TrivialAugment restricted to colour: identity, brightness/contrast/sharpness up to 0.5,
    posterize, autocontrast, equalize; saturation ("Color") up to 0.02 (birds: colour is the
    class) or, `strong`, up to 0.5 plus solarize (cars: colour is not the class)."""

    def __init__(self, strong: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.strong = bool(strong)

    def _augmentation_space(self, num_bins: int):
        space = {
            "Identity": (torch.tensor(0.0), False),
            "Brightness": (torch.linspace(0.0, 0.5, num_bins), True),
            "Color": (torch.linspace(0.0, 0.5 if self.strong else 0.02, num_bins), True),
            "Contrast": (torch.linspace(0.0, 0.5, num_bins), True),
            "Sharpness": (torch.linspace(0.0, 0.5, num_bins), True),
            "Posterize": (8 - (torch.arange(num_bins) / ((num_bins - 1) / 6)).round().int(), False),
        }
        if self.strong:
            space["Solarize"] = (torch.linspace(255.0, 0.0, num_bins), False)
        space["AutoContrast"] = (torch.tensor(0.0), False)
        space["Equalize"] = (torch.tensor(0.0), False)
        return space


def two_view_transforms(image_size: int, dataset: str = "cub", pretrain: bool = False,
                        max_translate: float = 16.0) -> tuple[transforms.Compose, transforms.Compose]:
    """(shared, per_view) transforms on PIL images; per_view ends in a normalised tensor.

    Apply as: base = shared(img); views = per_view(base), per_view(base).
    """
    if dataset not in DATASETS:
        raise ValueError(f"augment dataset {dataset!r} is not one of {', '.join(DATASETS)}")
    s = int(image_size)
    margin = 32 if (dataset == "cars" or pretrain) else 8
    shared = transforms.Compose([
        transforms.Resize((s + margin, s + margin)),
        ShapeTrivialAugment(max_translate=max_translate),
        transforms.RandomHorizontalFlip(),
        transforms.RandomResizedCrop(s + 4, scale=(0.95, 1.0)),
    ])
    per_view = transforms.Compose([
        ColourTrivialAugment(strong=dataset == "cars"),
        transforms.RandomCrop((s, s)),
        transforms.ToTensor(),
        transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])
    return shared, per_view


class TwoViewDataset(torch.utils.data.Dataset):
    """Wraps an ImageDataset (core.data): item i -> (view1, view2, label, i).

    Reads the un-augmented crop (`load_rgb`) and applies `shared` once and `per_view`
    twice. The authors' pretraining on CUB reads the uncropped images (train, not
    train_crop); here the base dataset decides (its crop_to_bbox).
    """

    def __init__(self, base, shared, per_view):
        self.base, self.shared, self.per_view = base, shared, per_view

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        from PIL import Image

        img = self.shared(Image.fromarray(self.base.load_rgb(i)))
        return self.per_view(img), self.per_view(img), int(self.base.records[i].label), i
