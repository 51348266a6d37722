"""ProtoPNet base: class-specific prototypes with a fixed (editable) class identity.

The class identity is a (M, C) buffer, not a derived quantity, so ProtoPShare's
merge-pruning can make a prototype serve several classes (OR the identities, add the
last-layer columns) and then drop prototypes with `keep_prototypes`; it is saved in the
state dict, so an edited model reloads as edited.
"""
from __future__ import annotations

import torch
from torch import nn

from core.errors import UserFacingError
from core.model.base import PrototypeModel
from core.model.config import ModelConfig


class ProtoPNet(PrototypeModel):
    """Logits = h(g_p) with h (C, M) initialised to 1 for own class, -0.5 for the others."""

    def __init__(self, config: ModelConfig):
        if config.prototypes_per_class < 1:
            raise UserFacingError(f"model.prototypes_per_class: must be >= 1, got {config.prototypes_per_class}")
        super().__init__(config)
        c, m = self.num_classes, self.num_prototypes
        identity = torch.zeros(m, c)
        if m == c * config.prototypes_per_class:
            identity[torch.arange(m), torch.arange(m) // config.prototypes_per_class] = 1.0
        self.register_buffer("prototype_class_identity", identity)
        self.last_layer = nn.Linear(m, c, bias=False)
        self.reset_last_layer()

    def _initial_num_prototypes(self) -> int:
        cfg = self.config
        return int(cfg.num_prototypes or cfg.num_classes * cfg.prototypes_per_class)

    def reset_last_layer(self) -> None:
        """1 for a prototype's own classes, `last_layer_negative` (-0.5) elsewhere."""
        own = self.prototype_class_identity.t()
        with torch.no_grad():
            self.last_layer.weight.copy_(own + (1.0 - own) * self.config.last_layer_negative)

    def class_scores(self, similarities):
        return self.last_layer(similarities), None

    def class_prototype_mask(self) -> torch.Tensor:
        return self.prototype_class_identity.t() > 0

    def hard_assignment(self) -> torch.Tensor:
        """(C, K', M) one-hot rows, K' = most prototypes of any class; unused rows are zero."""
        mask = self.class_prototype_mask()
        counts = mask.sum(dim=1)
        k = max(int(counts.max().item()) if counts.numel() else 0, 1)
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :k]   # own prototypes first
        out = torch.zeros(mask.shape[0], k, mask.shape[1], device=mask.device)
        out.scatter_(2, order.unsqueeze(2), 1.0)
        valid = torch.arange(k, device=mask.device)[None, :] < counts[:, None]
        return out * valid.unsqueeze(2)

    def slot_assignment(self) -> torch.Tensor:
        """The class identity as one-hot slots (`hard_assignment`), for the sharing views."""
        return self.hard_assignment()

    def last_layer_l1_mask(self) -> torch.Tensor:
        return 1.0 - self.prototype_class_identity.t()

    def class_connections(self) -> torch.Tensor:
        return self.last_layer.weight.detach().clone()

    def keep_prototypes(self, index: torch.Tensor) -> None:
        """Keep the prototypes at `index` with their identity rows and last-layer columns."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.prototypes.device)
        self.prototype_layer.keep(index)
        self.prototype_class_identity = self.prototype_class_identity[index].clone()
        weight = self.last_layer.weight.data[:, index].clone()
        self.last_layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False).to(weight.device)
        with torch.no_grad():
            self.last_layer.weight.copy_(weight)
        self.config.num_prototypes = int(index.numel())
