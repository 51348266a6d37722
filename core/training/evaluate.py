"""Accuracy with the hard, noise-free assignment (model in eval mode)."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from core.training.distributed import unwrap


def autocast_for(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when amp is "auto"/"bf16"; on CPU only when "bf16"."""
    if amp == "bf16" or (amp == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_channels_last(device: torch.device, setting: str) -> bool:
    return setting == "on" or (setting == "auto" and device.type == "cuda")


@torch.no_grad()
def evaluate(model, dataset, *, batch_size: int = 100, device: str | torch.device = "cpu", amp: str = "auto",
             channels_last: bool = False, num_workers: int = 0, progress: bool = False,
             desc: str = "evaluate") -> dict:
    """{"accuracy": fraction, "loss": mean CE, "n": images} on `dataset` (any split)."""
    net = unwrap(model)
    was_training = net.training
    net.eval()
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    correct, total, loss_sum = 0, 0, 0.0
    for images, labels, _ in tqdm(loader, desc=desc, disable=not progress, leave=False):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, amp):
            logits = net(images).logits.float()
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(dim=1) == labels).sum())
        total += int(labels.numel())
    net.train(was_training)
    return {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1), "n": total}
