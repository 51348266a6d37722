"""The prototype layer `g`: prototypes, their activations, and ProtoPool's slot assignment.

Kept apart from the architectures so ProtoPool (learned slots) and ProtoPNet (fixed
class identity) share the same prototype tensor and distance code, and so tools that edit
a model (ProtoPShare merge-pruning) find the prototypes in one place.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from core.errors import UserFacingError
from core.model.similarity import DISTANCE_KERNELS, get_activation


class PrototypeLayer(nn.Module):
    """M prototypes in R^D; maps features to distances, min distances and activations."""

    def __init__(self, num_prototypes: int, depth: int, similarity: str = "focal", epsilon: float = 1e-4,
                 kernel: str = "matmul"):
        super().__init__()
        if kernel not in DISTANCE_KERNELS:
            raise UserFacingError(f"model.distance_kernel: {kernel!r} is not one of {', '.join(DISTANCE_KERNELS)}")
        self._distances = DISTANCE_KERNELS[kernel]
        self.prototypes = nn.Parameter(torch.rand(num_prototypes, depth))
        self.similarity = similarity
        self.epsilon = float(epsilon)
        self._activation = get_activation(similarity)

    @property
    def num_prototypes(self) -> int:
        return int(self.prototypes.shape[0])

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, M, H, W), computed in float32 even under autocast."""
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self._distances(features.float(), self.prototypes.float())

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (patch distances (B,M,H,W), min distances (B,M), activations g_p (B,M))."""
        dist = self.distances(features)
        with torch.autocast(device_type=features.device.type, enabled=False):
            min_dist = dist.flatten(2).amin(dim=2)
            act = self._activation(dist, self.epsilon)
        return dist, min_dist, act

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the prototypes at `index` (in that order): used by pruning tools."""
        self.prototypes = nn.Parameter(self.prototypes.data[index].clone())


def tau_alpha(end_epoch: float, end: float = 1e-3) -> float:
    """The alpha for which 1/sqrt(alpha * end_epoch) = end (3.4e4 ~ 1/(0.001^2 * 30))."""
    return 1.0 / (float(end) ** 2 * float(end_epoch))


def tau_schedule(epoch: float, alpha: float | None = 3.4e4, end_epoch: float = 30.0,
                 start: float = 1.0, end: float = 1e-3) -> float:
    """Gumbel-softmax temperature in epoch `epoch` of the joint phase (SPEC section 1).

    tau = start in epoch 0 (and in warm-up, where the trainer passes 0), tau = end from
    `end_epoch` on, 1/sqrt(alpha * e) in between (clipped to [end, start]). The paper:
    alpha = 3.4e4, end_epoch = 30. `alpha=None` derives alpha from `end_epoch` so that
    tau reaches `end` exactly there (how short runs scale the schedule to their length).
    """
    if alpha is None or alpha <= 0:
        alpha = tau_alpha(end_epoch, end)
    if epoch <= 0:
        return float(start)
    if epoch >= end_epoch:
        return float(end)
    return float(min(start, max(end, 1.0 / math.sqrt(alpha * epoch))))


def xavier_normal_std(num_classes: int, num_slots: int, num_prototypes: int) -> float:
    """Xavier-normal std of the slot logits, as the official code initialises its
    (C, M, K) tensor: fan_in = M*K, fan_out = C*K (gain 1)."""
    return math.sqrt(2.0 / (num_prototypes * num_slots + num_classes * num_slots))


class SlotAssignment(nn.Module):
    """K slots per class, each a distribution over the M prototypes (logits q: C x K x M).

    Training, by `mode` (`model.assignment`):
    - "gumbel" (the paper's ProtoPool): softmax(q / tau + eta), eta standard Gumbel noise
      that is NOT divided by tau (the paper's modification), tau annealed over epochs;
    - "softmax" (the paper's ablation "w/o Gumbel", = the authors' code without
      --pp_gumbel): softmax(q) at temperature 1 throughout training; tau is ignored, so
      nothing but the logits themselves can make a slot hard;
    - "softmax-annealed" (ours, named "w/o Gumbel noise", not in the paper):
      softmax(q / tau) under the annealed tau, i.e. the Gumbel trick minus its noise.
    Evaluation (eval mode), by `eval_assignment`: "hard" (default; the paper): noise-free
    one-hot argmax; "soft": softmax(q) at temperature 1, how the authors' code evaluates
    a model trained without --pp_gumbel (`gumbel_scale=0`).
    Logits start Xavier-normal (paper and official code), not at zero: a slot's argmax
    is defined from the start and slots of a class differ.
    """

    MODES = ("gumbel", "softmax", "softmax-annealed")
    EVAL_MODES = ("hard", "soft")

    def __init__(self, num_classes: int, num_slots: int, num_prototypes: int, mode: str = "gumbel"):
        super().__init__()
        check_assignment(mode)
        self.mode = mode
        self.eval_assignment = "hard"
        std = xavier_normal_std(num_classes, num_slots, num_prototypes)
        self.logits = nn.Parameter(torch.randn(num_classes, num_slots, num_prototypes) * std)
        self.register_buffer("tau", torch.tensor(1.0))

    def set_eval_assignment(self, how: str) -> None:
        """"hard" (the paper's test-time assignment) or "soft" (softmax(q), see class doc)."""
        if how not in self.EVAL_MODES:
            raise UserFacingError(f"--assignment: {how!r} is not an evaluation assignment; "
                                  f"valid: {', '.join(self.EVAL_MODES)}")
        self.eval_assignment = how

    def probabilities(self) -> torch.Tensor:
        """softmax(q) over prototypes (C, K, M): the noise-free slot distributions."""
        return torch.softmax(self.logits, dim=-1)

    def binarisation(self, threshold: float = 0.9) -> float:
        """Share of slots whose softmax(q) (temperature 1, no noise) puts more than
        `threshold` on one prototype: the paper's "binarised assignment" measure."""
        with torch.no_grad():
            return float((self.probabilities().amax(dim=-1) > threshold).float().mean())

    def hard(self) -> torch.Tensor:
        """(C, K, M) one-hot of argmax q (equal to thresholding softmax(q) at 0.5 once binarised)."""
        idx = self.logits.argmax(dim=-1, keepdim=True)
        return torch.zeros_like(self.logits).scatter_(-1, idx, 1.0)

    def forward(self) -> torch.Tensor:
        if not self.training:
            return self.probabilities() if self.eval_assignment == "soft" else self.hard()
        if self.mode == "softmax":          # the paper's "w/o Gumbel": temperature 1 throughout
            return self.probabilities()
        scaled = self.logits / self.tau
        if self.mode == "gumbel":
            gumbel = -torch.empty_like(self.logits).exponential_().log()
            scaled = scaled + gumbel
        return torch.softmax(scaled, dim=-1)

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the prototypes at `index` along the last axis."""
        self.logits = nn.Parameter(self.logits.data[..., index].clone())


def check_assignment(mode: str, where: str = "model.assignment") -> None:
    """One error line naming the value and the valid assignment modes."""
    if mode not in SlotAssignment.MODES:
        raise UserFacingError(f"{where}: unknown assignment {mode!r}; valid: {', '.join(SlotAssignment.MODES)} "
                              f"(gumbel = ProtoPool; softmax = the paper's w/o Gumbel, temperature 1; "
                              f"softmax-annealed = w/o Gumbel noise, ours)")
