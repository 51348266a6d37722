"""The one rule for choosing the compute device.

`--device` of every command, `runtime.device` of a training config and the `device=`
argument of the library functions all go through `resolve_device`:

- "auto", "" or None: this process's CUDA device (`cuda:LOCAL_RANK`, so each torchrun
  process gets its own GPU) when CUDA is available, else the CPU;
- anything else ("cpu", "cuda", "cuda:1", a `torch.device`) is taken as given.
"""
from __future__ import annotations

import torch

AUTO = "auto"


def resolve_device(name: str | torch.device | None = AUTO, local_rank: int = 0) -> torch.device:
    """The torch.device that `name` means (see the module docstring)."""
    if name is None or name == "" or name == AUTO:
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)
