"""The model contract: what every prototype architecture gives the rest of the toolkit.

Two halves (docs/INTERFACES.md, "Adding an architecture", has a worked outline):

- `PrototypeArchitecture`, the network: `forward` gives the logits and the prototype
  evidence an explanation needs (`ModelOutput`); per-prototype activation maps at
  feature resolution (`patch_similarities`, higher = more present, whatever the
  architecture computes: log-distance similarities, a softmax over channels, ...); the
  similarity of given feature cells to every prototype (`prototype_maps`); the class
  connections of the prototypes (`class_connections`, `class_prototype_mask`); what
  "prototype in use" means (`prototypes_in_use`); named parameter groups the phases
  train (`parameter_groups`, `set_trainable`). What explanations, atlases and metrics read
  (core/explain, core/atlas, core/metrics), all with a default here: `evidence` (one
  pass: logits, presences and maps), `decision_layer` (the last layer's inputs, e.g.
  ProtoPool's slots), and the optional capabilities `prototype_distances` (squared
  feature-space distances), `prototype_vectors` (prototypes as points, for ProtoPShare's
  Euclidean pairs) and `slot_assignment` (ProtoPool's slot matrix for the sharing views),
  None where an architecture has no such thing.
- `Architecture`, its registry entry (core/architectures.py): how to build it from a
  `ModelConfig`, which phases train it (`TrainPhase`: settings, its own loss, a data hook
  for several augmented views, per-epoch and per-step hooks; `OncePhase`: a step run
  once, e.g. projection or prototype seeding), and its own config checks.

The trainer (core/training/loop.py) runs the phases an architecture declares, in order,
and knows nothing else of it: no architecture name and no attribute probing there.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import UserFacingError
from core.model.config import ModelConfig


@dataclass
class ModelOutput:
    """One forward pass. `logits` (B, C); `similarities` (B, M): each prototype's presence
    in each image (the value the class layer reads: ProtoPNet's max similarity, focal
    similarity, PIP-Net's max-pooled softmax score).

    Optional, by architecture: `min_distances` (B, M) for distance-based prototypes (their
    cluster/separation losses), `assignment` (C, K, M) ProtoPool's slot distribution of
    this pass, `maps` (B, M, H, W) the per-patch activation maps when the forward computed
    them anyway (PIP-Net's alignment loss reads them).
    """

    logits: torch.Tensor
    min_distances: torch.Tensor | None
    similarities: torch.Tensor
    assignment: torch.Tensor | None = None
    maps: torch.Tensor | None = None


@dataclass
class DecisionLayer:
    """How presences become class logits, as an explanation breaks them down.

    `weight` (C, J): the last layer's weights from its J inputs to the classes; `routing`
    (J, M): which prototype feeds each input (one-hot rows: ProtoPool's hard slot
    assignment, J = C·K; the identity, J = M, where prototypes feed the layer directly);
    `slots_per_class` K when input j is slot (j // K, j % K) of class j // K, else None.
    Then logit_c = Σ_j weight[c, j] · (routing @ similarities)[j] (+ a bias, if any) and
    `class_connections()` = weight @ routing.
    """

    weight: torch.Tensor
    routing: torch.Tensor
    slots_per_class: int | None = None


class PrototypeArchitecture(nn.Module):
    """The network half of the contract. Subclasses set `GROUPS` and `config` and implement
    the methods that raise NotImplementedError; the rest has a default here."""

    GROUPS: tuple[str, ...] = ()
    config: ModelConfig

    # -- evidence ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> ModelOutput:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W): the feature cells prototypes are compared with."""
        raise NotImplementedError

    def prototype_maps(self, features: torch.Tensor) -> torch.Tensor:
        """Similarity of feature cells to every prototype: (B, D, H, W) -> (B, M, H, W),
        higher = more similar. A single patch z (D,) is `prototype_maps(z[None, :, None, None])`."""
        raise NotImplementedError

    def patch_similarities(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M, H, W) per-prototype activation maps of images x at feature resolution."""
        return self.prototype_maps(self.features(x))

    def class_connections(self) -> torch.Tensor:
        """(C, M) float: the weight with which each prototype's presence enters each class's
        logit (the last layer seen through any assignment)."""
        raise NotImplementedError

    def class_prototype_mask(self) -> torch.Tensor:
        """(C, M) bool: prototype m serves class c (its positive evidence)."""
        raise NotImplementedError

    def decision_layer(self) -> DecisionLayer:
        """The last layer as explanations break it down (DecisionLayer); default: the class
        connections fed by the prototypes directly."""
        weight = self.class_connections().detach()
        return DecisionLayer(weight, torch.eye(weight.shape[1], device=weight.device, dtype=weight.dtype))

    def evidence(self, x: torch.Tensor) -> ModelOutput:
        """One pass for explanations: `ModelOutput` with `maps` (B, M, H, W) filled (the
        `patch_similarities` of x) and logits that the decision layer decomposes exactly
        (similarities through `decision_layer()`). Default: the forward, plus
        `patch_similarities` when the forward computed no maps."""
        out = self(x)
        if out.maps is None:
            out.maps = self.patch_similarities(x)
        return out

    def prototype_distances(self, features: torch.Tensor) -> torch.Tensor | None:
        """(B, M, H, W) squared feature-space distances of the cells to the prototypes, for
        architectures whose prototypes are points in feature space (nearest patches record
        them); None (the default) for the others."""
        return None

    def prototype_vectors(self) -> torch.Tensor | None:
        """(M, D) the prototypes as points in feature space (ProtoPShare's Euclidean pairs);
        None (the default) when prototypes are not points one can compare."""
        return None

    def slot_assignment(self) -> torch.Tensor | None:
        """(C, K, M) a class-slot-to-prototype matrix for the sharing views (ProtoPool's
        softmax(q)); None (the default) when the architecture has no slots."""
        return None

    def prototype_classes(self) -> list[list[int]]:
        """For each prototype, the sorted classes it serves (empty if none)."""
        mask = self.class_prototype_mask().t().cpu()
        return [torch.nonzero(row).flatten().tolist() for row in mask]

    def prototypes_in_use(self) -> torch.Tensor:
        """(M,) bool: prototypes that take part in some class's decision (the ones to
        project, explain, name and show); default: serving at least one class."""
        return self.class_prototype_mask().any(dim=0)

    @property
    def num_classes(self) -> int:
        return int(self.config.num_classes)

    @property
    def num_prototypes(self) -> int:
        raise NotImplementedError

    @property
    def image_stride(self) -> int:
        """Input pixels per feature cell."""
        raise NotImplementedError

    # -- training ------------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named groups (keys: GROUPS) a phase gives learning rates; empty list if none."""
        raise NotImplementedError

    def set_trainable(self, groups: set[str] | list[str]) -> None:
        """Train only `groups`: the others get requires_grad=False (and frozen BatchNorm
        stays in eval mode)."""
        raise NotImplementedError

    # -- evaluation options and figures ----------------------------------------------------------
    def eval_assignments(self) -> tuple[str, ...]:
        """How the model may decide at evaluation (`python -m core evaluate --assignment`)."""
        return ("hard",)

    def set_eval_assignment(self, how: str) -> None:
        if how not in self.eval_assignments():
            raise UserFacingError(f"--assignment {how}: a {self.config.architecture} model decides "
                                  f"{' or '.join(self.eval_assignments())} only")

    def summary(self) -> dict[str, float]:
        """Architecture-specific figures of a trained model for reports (e.g. ProtoPool's
        binarised share of slots); empty by default."""
        return {}


# -- phases --------------------------------------------------------------------------------------

@dataclass
class PhaseConfig:
    """One phase's settings: the groups it trains are the keys of `lr`."""

    epochs: int = 0
    lr: dict = field(default_factory=dict)            # group -> learning rate
    weight_decay: dict = field(default_factory=dict)  # group -> weight decay (default 0)
    lr_step: int = 0                                  # multiply lr by lr_gamma every lr_step epochs (0 = never)
    lr_gamma: float = 0.5
    patience: int = 0                                 # early stopping on val accuracy (0 = off)
    select_best: bool = True                          # when the phase selects: continue from the best val epoch


@dataclass
class Batch:
    """What a phase's loss sees of one step. With `views` > 1 (a two-view phase) `inputs`
    holds the views one after the other (view 1 of every image, then view 2, ...) and
    `labels` / `targets` are repeated to match; `images` is the batch size per view."""

    inputs: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor          # labels, or mixup's soft targets (B, C)
    views: int = 1
    epoch: int = 0                 # within the phase, from 0
    epochs: int = 1                # of the phase


# (trained module, its output, the batch) -> (total loss, {term: detached value})
LossFn = Callable[[nn.Module, Any, Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class PhaseContext:
    """What the trainer lends a phase's hooks: the model, the run's config (a
    core.training.config.Config), the data, where the run writes, and `carry`, state one
    phase leaves for a later one (saved in last.pt, so a resumed run keeps it)."""

    net: PrototypeArchitecture
    config: Any
    device: torch.device
    train_set: Any                 # the training split as trained on (augmented if data.augment)
    plain_train_set: Any           # the same images, never augmented (projection, seeding)
    out_dir: Path
    progress: bool = False
    carry: dict = field(default_factory=dict)


@dataclass
class TrainPhase:
    """An epoch loop: Adam over the groups named in `settings.lr`, `loss` on every batch.

    Hooks, all optional:
    - `module(net, ctx)`: the module this phase trains and calls, when it is not the net
      itself (e.g. the backbone with a throw-away head); `optimizer_groups(module,
      settings)` then gives its Adam parameter groups, `save_module` / `load_module` its
      extra state for resume, `on_end(module, ctx)` what it leaves in `ctx.carry`;
    - `views`: items per image (2: each image twice, independently augmented);
    - `view_data(plain_train_set, config)`: the phase's own several-view data set when the
      views must share part of their augmentation (PIP-Net: one shape transform, then a
      colour transform per view, so a patch is the same place in both views); items
      ((views, 3, H, W), label, index), built from the un-augmented training split;
    - `on_epoch_start(net, epoch)`: set per-epoch state (ProtoPool's tau) and return the
      values to log in the epoch's metrics row;
    - `after_step(net)`: after each optimiser step (e.g. clamp weights);
    - `selects_best`: early stopping (`settings.patience`) and best.pt on validation
      accuracy, and with `settings.select_best` the run continues from the best epoch;
    - `global_clock`: its epochs count in the run's global epoch (metrics, the
      distributed sampler); the backbone pretraining does not;
    - `validate`: log validation accuracy after each epoch (of `module` when given).
    """

    name: str
    settings: PhaseConfig
    loss: LossFn
    module: Callable[[PrototypeArchitecture, PhaseContext], nn.Module] | None = None
    optimizer_groups: Callable[[nn.Module, PhaseConfig], list[dict]] | None = None
    save_module: Callable[[nn.Module], dict] | None = None
    load_module: Callable[[nn.Module, dict], None] | None = None
    on_end: Callable[[nn.Module, PhaseContext], None] | None = None
    views: int = 1
    view_data: Callable[[Any, Any], Any] | None = None
    mixup: bool = True
    on_epoch_start: Callable[[PrototypeArchitecture, int], dict] | None = None
    after_step: Callable[[PrototypeArchitecture], None] | None = None
    selects_best: bool = False
    global_clock: bool = True
    validate: bool = True

    @property
    def epochs(self) -> int:
        return int(self.settings.epochs)


@dataclass
class OncePhase:
    """A step run once between epoch phases (projection, prototype seeding).

    `run(ctx)` returns None or {"projection": records} (the checkpoint's projection
    records); with `logs_row` the trainer validates afterwards and logs one metrics row.
    """

    name: str
    run: Callable[[PhaseContext], dict | None]
    logs_row: bool = False


Phase = TrainPhase | OncePhase


@dataclass(frozen=True)
class Architecture:
    """A registry entry (core/architectures.py).

    `build(model_config)` makes the network; `phases(config)` the phases that train it, in
    order, from a core.training.config.Config (phases of 0 epochs may be left out or kept:
    the trainer skips them); `check_config(config, source)` refuses settings the
    architecture cannot train with, as one UserFacingError line; `groups` its parameter
    groups (the config's lr keys); `label` its name as papers and reports spell it.
    """

    name: str
    build: Callable[[ModelConfig], PrototypeArchitecture]
    phases: Callable[[Any], list[Phase]]
    check_config: Callable[[Any, str], None] | None = None
    groups: tuple[str, ...] = ()
    label: str = ""
