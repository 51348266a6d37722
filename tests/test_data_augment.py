"""SPEC §1 augmentation (train only) and 50:50 mixup."""
from __future__ import annotations

import pytest
import torch

from core.data import load_dataset, mixup
from core.data.augment import train_augmentation
from data_fixtures import synthetic_set


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return synthetic_set(tmp_path_factory)


def test_augmentation_train_only_and_random(birds):
    aug = load_dataset("cub", birds, split="train", image_size=48, augment=True, val_fraction=0.34)
    val = load_dataset("cub", birds, split="val", image_size=48, augment=True, val_fraction=0.34)
    test = load_dataset("cub", birds, split="test", image_size=48, augment=True)
    plain = load_dataset("cub", birds, split="train", image_size=48, augment=False, val_fraction=0.34)
    assert aug.augment and not val.augment and not test.augment
    torch.manual_seed(0)
    a1 = aug[0][0]
    a2 = aug[0][0]
    assert a1.shape == (3, 48, 48) and a1.dtype == torch.float32
    assert not torch.equal(a1, a2) and not torch.equal(a1, plain[0][0])
    torch.manual_seed(0)
    assert torch.equal(aug[0][0], a1)  # reproducible from the torch seed
    assert torch.equal(val[0][0], val[0][0])
    assert (aug.load_rgb(0) == plain.load_rgb(0)).all()  # load_rgb is never augmented


def test_augmentation_ops_on_a_marked_image():
    img = torch.zeros(3, 64, 64, dtype=torch.uint8)
    img[:, 5:20, 5:20] = 255  # a bright square in the top-left corner
    torch.manual_seed(1)
    t = train_augmentation()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small image: threads only add contention
    try:
        outs = [t(img) for _ in range(30)]
    finally:
        torch.set_num_threads(threads)
    assert all(o.shape == img.shape and o.dtype == torch.uint8 for o in outs)
    in_top_left = [o[:, :32, :32].float().mean() > o[:, 32:, 32:].float().mean() for o in outs]
    assert 0 < sum(in_top_left) < 30  # flips move the square to other corners sometimes
    rot_only = train_augmentation(shear=0.0, skew_p=0.0, flip_p=0.0)
    o = rot_only(img)
    assert o[:, 5:20, 5:20].float().mean() > 150  # ±15° keeps the square roughly where it was


def test_mixup():
    x = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).reshape(4, 3, 2, 2)
    y = torch.tensor([0, 1, 2, 1])
    g = torch.Generator().manual_seed(0)
    mixed, soft = mixup(x, y, 3, generator=g)
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mixed, 0.5 * x + 0.5 * x[perm])
    assert soft.shape == (4, 3)
    torch.testing.assert_close(soft.sum(1), torch.ones(4))
    for i in range(4):
        expect = torch.zeros(3)
        expect[y[i]] += 0.5
        expect[y[perm[i]]] += 0.5
        torch.testing.assert_close(soft[i], expect)
    m2, s2 = mixup(x, y, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m2, mixed) and torch.equal(s2, soft)
    m3, s3 = mixup(x, y, 3, ratio=1.0)
    assert torch.equal(m3, x) and torch.equal(s3, torch.nn.functional.one_hot(y, 3).float())
    with pytest.raises(ValueError):
        mixup(x, y[:3], 3)
