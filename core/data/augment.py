"""Training augmentation of SPEC §1 (torchvision.transforms.v2) and batch mixup.

The paper augments offline with rotation ±15° (always), vertical and horizontal flips
(p=0.5 each), skew (p=0.5) and shear ±10° (always), then mixes images 50:50. Here the
same operations run online on the uint8 model input, so every epoch sees new variants
and nothing is written to disk. Skew is a random perspective warp; its strength 0.2 is
the magnitude of the Augmentor `skew` the authors' code used (corners move by at most
20% of the half side, well under 45°).
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2


def train_augmentation(rotation: float = 15.0, shear: float = 10.0, skew: float = 0.2,
                       skew_p: float = 0.5, flip_p: float = 0.5) -> v2.Compose:
    """uint8 tensor [3, S, S] -> uint8 tensor [3, S, S], randomly transformed (torch RNG)."""
    return v2.Compose([
        v2.RandomRotation(degrees=rotation, interpolation=v2.InterpolationMode.BILINEAR),
        v2.RandomHorizontalFlip(p=flip_p),
        v2.RandomVerticalFlip(p=flip_p),
        v2.RandomPerspective(distortion_scale=skew, p=skew_p, interpolation=v2.InterpolationMode.BILINEAR),
        v2.RandomAffine(degrees=0.0, shear=(-shear, shear, -shear, shear),
                        interpolation=v2.InterpolationMode.BILINEAR),
    ])


def mixup(images: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
          generator: torch.Generator | None = None, ratio: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each image with a randomly chosen partner of the same batch.

    Returns `ratio * x + (1 - ratio) * x[perm]` and the matching soft targets
    (B, num_classes), rows summing to 1, for a soft-label cross-entropy. With the
    paper's 50:50 the pair is symmetric. `generator` makes the pairing reproducible.
    """
    if images.dim() < 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"images and labels disagree on the batch size: {tuple(images.shape)} vs {tuple(labels.shape)}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mixup ratio must be in [0, 1], got {ratio}")
    perm = torch.randperm(images.shape[0], generator=generator, device="cpu").to(images.device)
    mixed = ratio * images + (1.0 - ratio) * images[perm]
    one_hot = torch.nn.functional.one_hot(labels.long(), num_classes).to(images.dtype if images.is_floating_point() else torch.float32)
    targets = ratio * one_hot + (1.0 - ratio) * one_hot[perm]
    return mixed, targets
