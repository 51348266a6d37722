"""The training data of an epoch: repeats of the train split, several views, the loader."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class RepeatedDataset(Dataset):
    """`repeats` passes over a data set as one (round(repeats * n) items, index i -> i mod n):
    with online augmentation each pass draws fresh augmentations, as the paper's epoch
    over 30 offline-augmented copies of each image (data.epoch_repeats)."""

    def __init__(self, dataset, repeats: float):
        self.dataset = dataset
        self.length = max(1, int(round(float(repeats) * len(dataset))))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return self.dataset[index % len(self.dataset)]


class Views(Dataset):
    """Each item `views` times, drawn independently (so differently augmented when the data
    set augments): (views, 3, H, W), label, index. A phase with `views` > 1 trains on it."""

    def __init__(self, dataset, views: int):
        self.dataset = dataset
        self.views = int(views)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        items = [self.dataset[index] for _ in range(self.views)]
        return torch.stack([item[0] for item in items]), items[0][1], items[0][2]


def flatten_views(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V, 3, H, W) -> (V*B, 3, H, W), view 1 of every image first; labels repeated V times."""
    b, v = images.shape[:2]
    return images.transpose(0, 1).reshape(v * b, *images.shape[2:]), labels.repeat(v)


def epoch_loader(train_set, *, batch_size: int, num_workers: int, generator: torch.Generator, pin_memory: bool,
                 dist_info, seed: int, global_epoch: int) -> DataLoader:
    """Shuffled batches of one epoch (a DistributedSampler's share under torchrun)."""
    if dist_info.enabled:
        sampler = DistributedSampler(train_set, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                     shuffle=True, seed=seed, drop_last=False)
        sampler.set_epoch(global_epoch)
        return DataLoader(train_set, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                          generator=generator, pin_memory=pin_memory, drop_last=False)
    return DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                      generator=generator, pin_memory=pin_memory, drop_last=False)
