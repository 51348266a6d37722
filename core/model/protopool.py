"""ProtoPool: a shared pool of M prototypes, K slots per class with a learned assignment."""
from __future__ import annotations

import torch
from torch import nn

from core.errors import UserFacingError
from core.model.base import ModelOutput, PrototypeModel
from core.model.config import ModelConfig
from core.model.contract import DecisionLayer
from core.model.prototype_pool import SlotAssignment
from core.model.similarity import focal_code_activation, log_similarity


class ProtoPool(PrototypeModel):
    """Slot score g_{c,k} = sum_i y_{c,k,i} g_{p_i}; h maps the C*K slot scores to C logits.

    h is initialised to 1 from each class's own slots and 0 elsewhere (positive reasoning).

    With similarity "focal-code" (the authors' code) the slot score is instead
    g(sum_i y_i min_z d_i) - g(sum_i y_i mean_z d_i): distances are mixed through the slot
    weights before the log. For one-hot slots (evaluation) both forms agree.
    """

    def __init__(self, config: ModelConfig):
        if not config.num_prototypes or config.num_prototypes < 1:
            raise UserFacingError(f"model.num_prototypes: ProtoPool needs a positive count, got {config.num_prototypes}")
        super().__init__(config)
        c, k, m = self.num_classes, config.num_slots, config.num_prototypes
        self.slots = SlotAssignment(c, k, m, config.assignment)
        self.last_layer = nn.Linear(c * k, c, bias=False)
        own = torch.block_diag(*[torch.ones(1, k) for _ in range(c)])  # (C, C*K)
        self.register_buffer("own_class_mask", own)
        with torch.no_grad():
            self.last_layer.weight.copy_(own)

    def _initial_num_prototypes(self) -> int:
        return int(self.config.num_prototypes)

    def _slot_modules(self) -> list[nn.Module]:
        return [self.slots]

    @property
    def num_slots(self) -> int:
        return int(self.slots.logits.shape[1])

    def set_tau(self, tau: float) -> None:
        self.slots.tau.fill_(float(tau))

    def slot_probabilities(self) -> torch.Tensor:
        """softmax(q): (C, K, M), noise-free, temperature 1 (the paper's histograms and
        the binarisation measure use it)."""
        return self.slots.probabilities()

    def slot_binarisation(self, threshold: float = 0.9) -> float:
        """Share of slots with max softmax(q) > threshold, at temperature 1."""
        return self.slots.binarisation(threshold)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if self.config.similarity != "focal-code":
            return super().forward(x)
        dist = self.prototype_layer.distances(self.features(x))
        y = self.slots()                                                     # (C, K, M)
        c, k, m = y.shape
        with torch.autocast(device_type=dist.device.type, enabled=False):
            flat = dist.flatten(2)
            min_dist, mean_dist = flat.amin(dim=2), flat.mean(dim=2)         # (B, M)
            mix = y.reshape(c * k, m).t().float()
            eps = self.prototype_layer.epsilon
            slot_scores = log_similarity(min_dist @ mix, eps) - log_similarity(mean_dist @ mix, eps)
            sim = focal_code_activation(dist, eps)                           # per prototype (explanations)
        return ModelOutput(logits=self.last_layer(slot_scores), min_distances=min_dist, similarities=sim,
                           assignment=y)

    def slot_distribution(self) -> torch.Tensor:
        """softmax(q / tau) at the current temperature, without noise: (C, K, M).

        The assignment the model trains with, minus the Gumbel noise; after training
        (tau = 0.001) it is binarised, and its argmax is the hard assignment. The paper's
        "w/o Gumbel" (`assignment: softmax`) trains at temperature 1: softmax(q).
        """
        if self.slots.mode == "softmax":
            return self.slots.probabilities()
        return torch.softmax(self.slots.logits / self.slots.tau, dim=-1)

    def duplicate_slot_classes(self) -> int:
        """Classes whose hard assignment holds one prototype in two (or more) of its slots
        (L_orth is meant to keep this at 0)."""
        idx = self.slots.hard().argmax(dim=-1)                               # (C, K)
        k = idx.shape[1]
        distinct = torch.tensor([len(set(row.tolist())) for row in idx])
        return int((distinct < k).sum())

    def class_scores(self, similarities):
        y = self.slots()                                     # (C, K, M)
        c, k, m = y.shape
        slot_scores = similarities @ y.reshape(c * k, m).t().to(similarities.dtype)   # (B, C*K)
        return self.last_layer(slot_scores), y

    def hard_assignment(self) -> torch.Tensor:
        return self.slots.hard()

    def class_prototype_mask(self) -> torch.Tensor:
        return self.slots.hard().amax(dim=1) > 0

    def last_layer_l1_mask(self) -> torch.Tensor:
        return 1.0 - self.own_class_mask

    def class_connections(self) -> torch.Tensor:
        """h's weights seen through the hard assignment: (C, C*K) @ (C*K, M)."""
        hard = self.slots.hard()
        return self.last_layer.weight.detach() @ hard.reshape(-1, hard.shape[-1]).to(self.last_layer.weight.dtype)

    def decision_layer(self) -> DecisionLayer:
        """h's (C, C·K) weights fed by the slots; slot (c, k) routes its hard-assigned prototype."""
        hard = self.slots.hard()
        c, k, m = hard.shape
        return DecisionLayer(self.last_layer.weight.detach(), hard.reshape(c * k, m), k)

    def slot_assignment(self) -> torch.Tensor:
        """softmax(q) (C, K, M), as the sharing views show it."""
        return self.slot_probabilities()

    def eval_assignments(self) -> tuple[str, ...]:
        return tuple(self.slots.EVAL_MODES)

    def set_eval_assignment(self, how: str) -> None:
        super().set_eval_assignment(how)
        self.slots.set_eval_assignment(how)

    def summary(self) -> dict[str, float]:
        return {"binarised_slots": self.slot_binarisation(0.9),
                "mean_max_slot_probability": float(self.slot_probabilities().detach().amax(dim=-1).mean())}

    def keep_prototypes(self, index: torch.Tensor) -> None:
        """Keep the prototypes at `index`; slot logits follow; config updated."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.prototypes.device)
        self.prototype_layer.keep(index)
        self.slots.keep(index)
        self.config.num_prototypes = int(index.numel())
