"""The training run, top to bottom: [pretrain], warm-up, joint, projection, last layer (SPEC 1).

The optional pretrain phase (0 epochs by default) trains only the backbone with a
throw-away linear head (and, with `train.pretrain_local`, a throw-away local
reconstruction head): a stand-in for ImageNet weights on offline machines (the demo).

One `Trainer.run()` executes the phases in order. After every epoch it writes
`last.pt` (weights + optimizer + scheduler + RNG + bookkeeping) atomically, so
`resume=True` continues a killed run where it stopped; every epoch re-seeds all RNGs
from (seed, phase, epoch), so a resumed epoch is the same epoch an uninterrupted run
would have trained. Model selection and early stopping use the validation split only.

Outputs in `out_dir`: last.pt (resume state), best.pt (best joint epoch on val),
model.pt (the final model), metrics.csv (one row per epoch), config.yaml.
"""
from __future__ import annotations

import csv
import io
import os
import random
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from core.errors import CheckpointError, UserFacingError
from core.model import build_model
from core.model.losses import LossWeights, compute_losses
from core.model.prototype_pool import tau_schedule
from core.training.checkpoint import load_state, read_checkpoint, save_checkpoint
from core.training.config import Config, PhaseConfig
from core.training.distributed import DistInfo, all_reduce_sum, resolve_device, setup_distributed, wrap_ddp
from core.training.evaluate import autocast_for, evaluate, use_channels_last
from core.training.projection import project_prototypes

PHASES = ("pretrain", "warmup", "joint", "projection", "last_layer")
METRIC_COLUMNS = ["phase", "epoch", "global_epoch", "tau", "lr", "loss", "cross_entropy", "cluster",
                  "separation", "orthogonality", "l1", "local_reconstruction", "train_accuracy", "val_accuracy", "seconds"]


def epoch_seed(seed: int, phase: str, epoch: int) -> int:
    return zlib.crc32(f"{seed}:{phase}:{epoch}".encode()) & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict:
    """All RNG states as tensors / plain lists (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
             "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    internal, version, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def make_optimizer(net, phase: PhaseConfig, betas) -> torch.optim.Optimizer:
    """Adam with one parameter group per trained model group (its own lr / weight decay)."""
    groups = []
    for name, params in net.parameter_groups().items():
        if name in phase.lr and params:
            groups.append({"params": params, "lr": float(phase.lr[name]),
                           "weight_decay": float(phase.weight_decay.get(name, 0.0)), "name": name})
    if not groups:
        raise UserFacingError(f"train: phase trains {sorted(phase.lr)} but the model has no such parameters")
    return torch.optim.Adam(groups, betas=tuple(betas))


def make_scheduler(optimizer, phase: PhaseConfig):
    if phase.lr_step > 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=phase.lr_step, gamma=phase.lr_gamma)
    return None


def train_step(model, net, optimizer, images, targets, weights: LossWeights, amp_ctx) -> tuple[torch.Tensor, dict]:
    """One optimisation step; `model` may be the DDP wrapper of `net`. Returns (logits, terms)."""
    optimizer.zero_grad(set_to_none=True)
    with amp_ctx:
        out = model(images)
    total, terms = compute_losses(net, out, targets, weights)
    total.backward()
    optimizer.step()
    terms["loss"] = total.detach()
    return out.logits.detach(), terms


def pretrain_step(model, net, optimizer, images, targets, weights, amp_ctx) -> tuple[torch.Tensor, dict]:
    """Backbone pretraining step: `model` is backbone + linear head; cross-entropy, plus
    the local reconstruction term when the classifier has a local head."""
    from core.model.losses import cross_entropy

    optimizer.zero_grad(set_to_none=True)
    with amp_ctx:
        logits, local = model(images)
    ce = cross_entropy(logits.float(), targets)
    terms = {"cross_entropy": ce.detach()}
    loss = ce
    inner = model.module if hasattr(model, "module") else model
    if local is not None:
        rec = torch.nn.functional.mse_loss(local.float(), inner.local_target(images, local.shape[-2:]))
        loss = loss + inner.local_weight * rec
        terms["local_reconstruction"] = rec.detach()
    loss.backward()
    optimizer.step()
    terms["loss"] = loss.detach()
    return logits.detach(), terms


def evidence_cells(backbone_features: torch.Tensor, head_weight: torch.Tensor, labels: torch.Tensor,
                   share: float) -> torch.Tensor:
    """Which cells carry the most evidence for their image's own class, as a flat mask.

    `backbone_features` (B, D, H, W), `head_weight` (C, D) of the pretraining head, whose
    linear score of a cell, w_label . f(cell), is that cell's share of the class logit (a
    class activation map). Keeps the top `share` of each image's H*W cells (at least one);
    the mask is (B*H*W,) in the order of `features.permute(0, 2, 3, 1).reshape(-1, D)`.
    """
    scores = torch.einsum("bdhw,bd->bhw", backbone_features.float(), head_weight[labels].float())
    flat = scores.reshape(scores.shape[0], -1)
    keep = max(1, int(round(float(share) * flat.shape[1])))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask.scatter_(1, flat.topk(keep, dim=1).indices, True)
    return mask.reshape(-1)


class PretrainClassifier(torch.nn.Module):
    """Backbone + global average pooling + linear head, for the optional pretraining phase.

    Stands in for ImageNet weights where none are available (offline CPU demo): the
    head is thrown away afterwards, only the backbone's weights stay in the model.
    """

    def __init__(self, backbone: torch.nn.Module, num_classes: int, pool: str = "avg", local_weight: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(backbone.out_channels, num_classes)
        self.pool = pool
        self.local_weight = float(local_weight)
        # local reconstruction: each feature cell predicts the mean colours of its own
        # 2 x 2 sub-squares of the input (12 numbers), so the cell must describe what lies
        # under it and not only the class (see TrainConfig.pretrain_local)
        self.local_head = torch.nn.Conv2d(backbone.out_channels, 12, 1) if self.local_weight > 0 else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats = self.backbone(x)
        pooled = feats.amax(dim=(2, 3)) if self.pool == "max" else feats.mean(dim=(2, 3))
        local = self.local_head(feats) if self.local_head is not None else None
        return self.head(pooled), local

    @staticmethod
    def local_target(images: torch.Tensor, grid) -> torch.Tensor:
        """Mean input colour of each cell's 2 x 2 sub-squares, as (B, 12, H, W)."""
        sub = torch.nn.functional.adaptive_avg_pool2d(images.float(), (2 * int(grid[0]), 2 * int(grid[1])))
        return torch.nn.functional.pixel_unshuffle(sub, 2)


class RepeatedDataset(torch.utils.data.Dataset):
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


class Trainer:
    """Runs (or resumes) the phases of one config into `out_dir`."""

    def __init__(self, config: Config, out_dir: str | Path, *, resume: bool = False, progress: bool | None = None,
                 dist_info: DistInfo | None = None, print_plan: bool | None = None):
        self.config = config
        self.out_dir = Path(out_dir)
        self.resume = resume
        rt = config.runtime
        self.progress_enabled = rt.progress if progress is None else progress
        self.print_plan = self.progress_enabled if print_plan is None else print_plan
        self.device = resolve_device(rt.device, int(os.environ.get("LOCAL_RANK", 0)))
        self.dist = dist_info or setup_distributed(self.device)
        if self.device.type == "cuda" and (rt.device == "auto" or self.device.index is None):
            self.device = torch.device(f"cuda:{self.dist.local_rank}")  # one GPU per torchrun process
        self.channels_last = use_channels_last(self.device, rt.channels_last)
        if rt.threads > 0:
            torch.set_num_threads(rt.threads)
        self.history: list[dict] = []
        self.projection: list | None = None
        self.completed: list[str] = []
        self.best = {"val_accuracy": -1.0, "epoch": -1, "since": 0}
        self._writer = None
        self._epoch_budget: int | None = None
        # the pretraining head, kept from the end of pretraining until the prototypes are
        # seeded (train.prototype_init_evidence < 1), and in last.pt meanwhile
        self._evidence_head: dict | None = None

    class _Budget(Exception):
        """Raised after `max_epochs` epochs of this session: the run stops as if killed."""

    # -- setup ------------------------------------------------------------------------------
    def _load_data(self) -> None:
        from core.data import load_dataset

        d = self.config.data
        common = dict(image_size=d.image_size, crop_to_bbox=d.crop_to_bbox, val_fraction=d.val_fraction,
                      seed=d.split_seed)
        self.train_set = load_dataset(d.dataset, d.root, split="train", augment=d.augment, **common)
        self.plain_train_set = load_dataset(d.dataset, d.root, split="train", augment=False, **common)
        self.val_set = load_dataset(d.dataset, d.root, split="val", **common) if d.val_fraction > 0 else None
        self.class_names = list(self.train_set.class_names)

    def _build_model(self) -> None:
        mc = self.config.model
        n = len(self.class_names)
        if mc.num_classes is not None and mc.num_classes != n:
            raise UserFacingError(f"model.num_classes is {mc.num_classes} but {self.config.data.root} has {n} classes")
        mc.num_classes = n
        seed_everything(self.config.runtime.seed)  # the initial weights depend on the seed only
        self.net = build_model(self.config.model).to(self.device)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def _bar(self, iterable, **kw):
        return tqdm(iterable, disable=not (self.progress_enabled and self.is_main), leave=False, **kw)

    # -- checkpoints -----------------------------------------------------------------------
    def _save(self, name: str, training: dict | None) -> None:
        if self.is_main:
            save_checkpoint(self.out_dir / name, self.net, config=self.config.to_dict(), class_names=self.class_names,
                            history=self.history, projection=self.projection, training=training)

    def _training_state(self, phase: str, epoch: int, optimizer=None, scheduler=None) -> dict:
        return {"phase": phase, "epoch": epoch, "completed": list(self.completed), "best": dict(self.best),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng_state(),
                **({"evidence_head": self._evidence_head} if self._evidence_head is not None else {})}

    def _restore(self) -> dict | None:
        path = self.out_dir / "last.pt"
        if not self.resume or not path.is_file():
            return None
        payload = read_checkpoint(path)
        arch, n = payload.get("architecture"), payload.get("num_classes")
        if arch != self.config.model.architecture:
            raise CheckpointError(f"{path}: architecture is {arch!r}, the config asks for {self.config.model.architecture!r}")
        if n != len(self.class_names):
            raise CheckpointError(f"{path}: has {n} classes, the data set has {len(self.class_names)}")
        stored = payload["config"]["model"]
        if stored.get("num_prototypes") != self.config.model.num_prototypes and arch == "protopool":
            raise CheckpointError(f"{path}: has {stored.get('num_prototypes')} prototypes, the config asks for "
                                  f"{self.config.model.num_prototypes}")
        load_state(self.net, payload["state_dict"], str(path))
        self.history = list(payload.get("history") or [])
        self.projection = payload.get("projection")
        training = payload.get("training") or {}
        self.completed = list(training.get("completed", []))
        self.best = dict(training.get("best", self.best))
        self._evidence_head = training.get("evidence_head")
        if training.get("rng"):
            set_rng_state(training["rng"])
        return training

    # -- metrics ---------------------------------------------------------------------------
    def _write_metrics(self) -> None:
        if not self.is_main:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in self.history:
            writer.writerow(row)
        path = self.out_dir / "metrics.csv"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, path)
        if self._writer is not None and self.history:
            row = self.history[-1]
            for key in ("loss", "cross_entropy", "cluster", "separation", "orthogonality", "l1",
                        "train_accuracy", "val_accuracy", "tau"):
                if row.get(key) is not None:
                    self._writer.add_scalar(f"{row['phase']}/{key}", row[key], row["global_epoch"])

    def _open_tensorboard(self) -> None:
        if not (self.config.runtime.tensorboard and self.is_main):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional: tensorboard not installed
            return
        self._writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    # -- phases ----------------------------------------------------------------------------
    def _global_epoch_start(self, phase: str) -> int:
        """Running epoch count (warm-up then joint epochs) for metrics and the distributed sampler."""
        if phase in ("pretrain", "warmup"):
            return 0
        warm = sum(1 for h in self.history if h["phase"] == "warmup")
        return warm if phase == "joint" else warm + sum(1 for h in self.history if h["phase"] == "joint")

    def _loader(self, epoch_seed_value: int, global_epoch: int):
        gen = torch.Generator().manual_seed(epoch_seed_value)
        d = self.config.data
        train_set = self.train_set
        if float(d.epoch_repeats) != 1.0:   # the paper's epoch over its offline-augmented set (plan.py)
            train_set = RepeatedDataset(self.train_set, float(d.epoch_repeats))
        if self.dist.enabled:
            sampler = DistributedSampler(train_set, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                         shuffle=True, seed=self.config.runtime.seed, drop_last=False)
            sampler.set_epoch(global_epoch)
            return DataLoader(train_set, batch_size=d.batch_size, sampler=sampler, num_workers=d.num_workers,
                              generator=gen, pin_memory=self.device.type == "cuda", drop_last=False)
        return DataLoader(train_set, batch_size=d.batch_size, shuffle=True, num_workers=d.num_workers,
                          generator=gen, pin_memory=self.device.type == "cuda", drop_last=False)

    def _train_epoch(self, phase: str, epoch: int, model, optimizer, weights: LossWeights, step_fn=train_step) -> dict:
        from core.data import mixup

        cfg = self.config
        seed = epoch_seed(cfg.runtime.seed, phase, epoch)
        seed_everything(seed)
        mix_gen = torch.Generator().manual_seed(seed + 1)
        start_global = self._global_epoch_start(phase) + epoch
        loader = self._loader(seed, start_global)
        amp_ctx = autocast_for(self.device, cfg.runtime.amp)
        model.train()
        sums: dict[str, float] = {}
        correct = total = 0
        tau = None
        bar = self._bar(loader, desc=f"{phase} {epoch + 1}")
        if phase in ("warmup", "joint") and hasattr(self.net, "set_tau"):
            # SPEC 1: tau follows the epochs of the joint phase (tau = start in warm-up and
            # in joint epoch 0), constant within an epoch
            t = cfg.train.tau
            tau = tau_schedule(epoch if phase == "joint" else 0, t.alpha, t.end_epoch, t.start, t.end)
            self.net.set_tau(tau)
        mix_rng = np.random.default_rng(seed + 2)
        for images, labels, _ in bar:
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            targets = labels
            if cfg.data.mixup:
                # paper: 50:50; data.mixup_alpha > 0: lambda ~ Beta(a, a) per batch (authors' code: 0.5)
                a = float(cfg.data.mixup_alpha)
                ratio = float(mix_rng.beta(a, a)) if a > 0 else 0.5
                images, targets = mixup(images, labels, self.net.num_classes, generator=mix_gen, ratio=ratio)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            logits, terms = step_fn(model, self.net, optimizer, images, targets, weights, amp_ctx)
            n = int(labels.numel())
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value) * n
            correct += int((logits.argmax(dim=1) == labels).sum())
            total += n
            bar.set_postfix(loss=f"{float(terms['loss']):.3f}", acc=f"{correct / max(total, 1):.3f}")
        keys = sorted(sums)
        reduced = all_reduce_sum([sums[k] for k in keys] + [correct, total], self.dist, self.device)
        total = max(reduced[-1], 1)
        row = {k: reduced[i] / total for i, k in enumerate(keys)}
        row["train_accuracy"] = reduced[-2] / total
        row["tau"] = tau
        row["global_epoch"] = start_global
        return row

    def _validate(self, classifier=None) -> float | None:
        if self.val_set is None or len(self.val_set) == 0:
            return None
        d = self.config.data
        if classifier is not None:
            return self._validate_classifier(classifier)
        result = evaluate(self.net, self.val_set, batch_size=d.eval_batch_size, device=self.device,
                          amp=self.config.runtime.amp, channels_last=self.channels_last,
                          num_workers=d.num_workers, progress=self.progress_enabled and self.is_main,
                          desc="validate")
        return result["accuracy"]

    @torch.no_grad()
    def _validate_classifier(self, classifier) -> float:
        classifier.eval()
        correct = total = 0
        for images, labels, _ in DataLoader(self.val_set, batch_size=self.config.data.eval_batch_size):
            images, labels = images.to(self.device), labels.to(self.device)
            with autocast_for(self.device, self.config.runtime.amp):
                correct += int((classifier(images)[0].argmax(dim=1) == labels).sum())
            total += int(labels.numel())
        classifier.train()
        return correct / max(total, 1)

    @torch.no_grad()
    def _seed_prototypes(self) -> None:
        """k-means++ seeding of the prototypes on feature cells of training images.

        `train.prototype_init: kmeans++` (default `uniform`, the paper's U[0, 1]). Uniform
        prototypes sit in the middle of the sigmoid feature cube, which is where the
        bland cells (plain background) are; a part of the bird drives features towards
        0 or 1. The nearest cells, which the cluster cost and the max pull towards, are
        then background and stay so. D^2 sampling starts each prototype on a cell far
        from the others: distinct, saturated cells, mostly on the bird.

        Mostly, not always: D^2 sampling also picks background cells next to the bird's
        outline. With `train.prototype_init_evidence` s < 1 only the share s of each image's
        cells that the pretraining head scores highest for the image's own class
        (`evidence_cells`) are candidates, so every prototype starts on class evidence.
        """
        g = torch.Generator().manual_seed(int(self.config.runtime.seed) + 17)
        share = float(self.config.train.prototype_init_evidence)
        head = None
        if share < 1:
            if self._evidence_head is None:
                raise CheckpointError(f"{self.out_dir / 'last.pt'}: no pretraining head to score cells for "
                                      f"train.prototype_init_evidence (written before that option?); "
                                      f"train again without --resume")
            head = self._evidence_head["weight"].to(self.device)
        n = min(len(self.train_set), 256)
        pick = torch.randperm(len(self.train_set), generator=g)[:n].tolist()
        was = self.net.training
        self.net.eval()
        feats = []
        ds = self.train_set   # never augmented here: the model's view of the plain images
        for start in range(0, n, 64):
            images = torch.stack([ds.normalize(np.ascontiguousarray(ds.load_rgb(i).transpose(2, 0, 1)))
                                  for i in pick[start:start + 64]]).to(self.device)
            base = self.net.backbone(images)
            cells = self.net.add_on(base).float().permute(0, 2, 3, 1).reshape(-1, self.net.prototypes.shape[1])
            if head is not None:
                labels = torch.as_tensor([int(ds.records[i].label) for i in pick[start:start + 64]], device=self.device)
                cells = cells[evidence_cells(base, head, labels, share)]
            feats.append(cells)
        self.net.train(was)
        cells = torch.cat(feats).cpu()
        m = self.net.num_prototypes
        chosen = [int(torch.randint(len(cells), (1,), generator=g))]
        d2 = ((cells - cells[chosen[0]]) ** 2).sum(dim=1)
        for _ in range(1, m):
            nxt = int(torch.multinomial(d2 / d2.sum(), 1, generator=g)) if float(d2.sum()) > 0 else \
                int(torch.randint(len(cells), (1,), generator=g))
            chosen.append(nxt)
            d2 = torch.minimum(d2, ((cells - cells[nxt]) ** 2).sum(dim=1))
        self.net.prototypes.data.copy_(cells[chosen].to(self.net.prototypes.device, self.net.prototypes.dtype))
        self._evidence_head = None   # seeded: last.pt no longer needs it

    def _run_phase(self, phase: str, pc: PhaseConfig, resume_state: dict | None) -> None:
        if phase in ("warmup", "joint") and self.config.train.prototype_init == "kmeans++" and \
                not {"warmup", "joint"} & set(self.completed) and \
                not (resume_state and resume_state.get("phase") == phase):
            self._seed_prototypes()   # once, before the prototypes first train
        self.net.set_trainable(list(pc.lr))
        classifier, step_fn = None, train_step
        if phase == "pretrain":
            classifier = PretrainClassifier(self.net.backbone, self.net.num_classes,
                                            self.config.train.pretrain_pool,
                                            self.config.train.pretrain_local).to(self.device)
            optimizer = torch.optim.Adam([{"params": list(classifier.parameters()), "lr": float(pc.lr["backbone"]),
                                           "weight_decay": float(pc.weight_decay.get("backbone", 0.0)),
                                           "name": "backbone"}], betas=tuple(self.config.train.betas))
            step_fn = pretrain_step
        else:
            optimizer = make_optimizer(self.net, pc, self.config.train.betas)
        scheduler = make_scheduler(optimizer, pc)
        start = 0
        if resume_state and resume_state.get("phase") == phase:
            start = int(resume_state["epoch"])
            if classifier is not None and resume_state.get("pretrain_head") is not None:
                classifier.head.load_state_dict(resume_state["pretrain_head"])
            if classifier is not None and classifier.local_head is not None and \
                    resume_state.get("pretrain_local_head") is not None:
                classifier.local_head.load_state_dict(resume_state["pretrain_local_head"])
            if resume_state.get("optimizer") is not None:
                optimizer.load_state_dict(resume_state["optimizer"])
            if scheduler is not None and resume_state.get("scheduler") is not None:
                scheduler.load_state_dict(resume_state["scheduler"])
        model = wrap_ddp(classifier if classifier is not None else self.net, self.dist, self.device)
        weights = self.config.loss
        for epoch in range(start, pc.epochs):
            if self._epoch_budget is not None:
                if self._epoch_budget <= 0:
                    raise Trainer._Budget()
                self._epoch_budget -= 1
            t0 = time.time()
            row = self._train_epoch(phase, epoch, model, optimizer, weights, step_fn)
            row.update(phase=phase, epoch=epoch, lr=optimizer.param_groups[0]["lr"],
                       val_accuracy=self._validate(classifier))
            if scheduler is not None:
                scheduler.step()
            row["seconds"] = round(time.time() - t0, 3)
            self.history.append(row)
            stop = False
            if phase == "joint" and row["val_accuracy"] is not None:
                if row["val_accuracy"] > self.best["val_accuracy"]:
                    self.best = {"val_accuracy": row["val_accuracy"], "epoch": epoch, "since": 0}
                    self._save("best.pt", None)
                else:
                    self.best["since"] += 1
                    stop = pc.patience > 0 and self.best["since"] >= pc.patience
            if self.is_main and self.progress_enabled:
                val = "-" if row["val_accuracy"] is None else f"{row['val_accuracy']:.3f}"
                tqdm.write(f"{phase} epoch {epoch + 1}/{pc.epochs}: loss {row['loss']:.4f} "
                           f"train acc {row['train_accuracy']:.3f} val acc {val}")
            if stop or epoch + 1 == pc.epochs:
                self._keep_evidence_head(classifier)
                self.completed.append(phase)
                self._finish_phase(phase)
                self._save("last.pt", self._training_state(phase, epoch + 1))
                self._write_metrics()
                return
            state = self._training_state(phase, epoch + 1, optimizer, scheduler)
            if classifier is not None:
                state["pretrain_head"] = {k: v.detach().cpu() for k, v in classifier.head.state_dict().items()}
                if classifier.local_head is not None:
                    state["pretrain_local_head"] = {k: v.detach().cpu()
                                                    for k, v in classifier.local_head.state_dict().items()}
            self._save("last.pt", state)
            self._write_metrics()
        self._keep_evidence_head(classifier)
        self.completed.append(phase)
        self._finish_phase(phase)
        self._save("last.pt", self._training_state(phase, pc.epochs))

    def _keep_evidence_head(self, classifier) -> None:
        """At the end of pretraining: keep its class head when it is to score the cells the
        prototypes are seeded from (train.prototype_init_evidence < 1)."""
        if classifier is not None and self.config.train.prototype_init_evidence < 1:
            self._evidence_head = {k: v.detach().cpu().clone() for k, v in classifier.head.state_dict().items()}

    def _finish_phase(self, phase: str) -> None:
        """After joint training, continue from the epoch that was best on validation."""
        best = self.out_dir / "best.pt"
        if (phase == "joint" and self.config.train.joint.select_best and self.best["epoch"] >= 0
                and best.is_file()):
            if self.dist.enabled:
                torch.distributed.barrier()
            load_state(self.net, read_checkpoint(best)["state_dict"], str(best))

    def _project(self) -> None:
        self.net.set_trainable([])
        self.projection = project_prototypes(
            self.net, self.plain_train_set, batch_size=self.config.train.projection_batch_size, device=self.device,
            num_workers=self.config.data.num_workers, progress=self.progress_enabled and self.is_main)
        val = self._validate()
        self.history.append({"phase": "projection", "epoch": 0, "global_epoch": self._global_epoch_start("last_layer"),
                             "val_accuracy": val})
        self.completed.append("projection")
        self._save("last.pt", self._training_state("projection", 1))
        self._write_metrics()
        if self.is_main and self.progress_enabled:
            tqdm.write(f"projection: val acc {'-' if val is None else f'{val:.3f}'}")

    def run(self, max_epochs: int | None = None) -> Path | None:
        """Train (or resume) every phase; returns the path of the final model.pt.

        `max_epochs` stops this session after that many epochs, exactly as a run killed
        right after writing last.pt (returns None); `resume=True` continues it.
        """
        self._epoch_budget = max_epochs
        try:
            return self._run()
        except Trainer._Budget:
            return None

    def _run(self) -> Path:
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._load_data()
        if self.is_main and self.print_plan:
            from core.training.plan import format_plans, phase_plan

            print(format_plans(self.config, phase_plan(self.config, len(self.train_set))), flush=True)
        self._build_model()
        resume_state = self._restore()
        if self.is_main:
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        self._open_tensorboard()
        t = self.config.train
        for phase in PHASES:
            if phase in self.completed:
                continue
            if phase == "projection":
                if t.project:
                    self._project()
                continue
            pc = getattr(t, phase)
            if pc.epochs > 0:
                self._run_phase(phase, pc, resume_state)
        self.net.set_trainable([])
        self.net.eval()
        final = self.out_dir / "model.pt"
        self._save("model.pt", None)
        if self._writer is not None:
            self._writer.close()
        return final


def train(config: Config, out_dir: str | Path, *, resume: bool = False, progress: bool | None = None) -> Path:
    """Convenience wrapper: `Trainer(config, out_dir, ...).run()`."""
    return Trainer(config, out_dir, resume=resume, progress=progress).run()
