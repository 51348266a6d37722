"""The training run, top to bottom: the phases the architecture declares, in order.

The architecture (core/architectures.py -> core.model.contract.Architecture) lists its
phases from the config; for ProtoPool and ProtoPNet (core.model.phases) they are
[pretrain], [seed], warm-up, joint, [projection], last layer (SPEC 1). This file runs any
such list and knows nothing else of the model:

- a `TrainPhase` is an epoch loop: Adam over the groups its settings give learning
  rates, the phase's own loss on every batch (of one or several views per image), its
  per-epoch and per-step hooks, validation after each epoch, early stopping and best.pt
  when the phase selects on validation accuracy;
- a `OncePhase` runs once (projection, prototype seeding).

After every epoch it writes `last.pt` (weights + optimizer + scheduler + RNG +
bookkeeping) atomically, so `resume=True` continues a killed run where it stopped; every
epoch re-seeds all RNGs from (seed, phase, epoch) (core.training.runstate), so a resumed
epoch is the same epoch an uninterrupted run would have trained. Model selection and early
stopping use the validation split only.

Outputs in `out_dir`: last.pt (resume state), best.pt (best epoch on val of the phase that
selects), model.pt (the final model), metrics.csv (one row per epoch), config.yaml.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from core.architectures import architecture, build_model
from core.errors import CheckpointError, UserFacingError
from core.model.contract import Batch, OncePhase, Phase, PhaseContext, TrainPhase
from core.training.batches import RepeatedDataset, Views, epoch_loader, flatten_views
from core.training.checkpoint import load_state, read_checkpoint, save_checkpoint
from core.training.config import Config
from core.training.distributed import DistInfo, all_reduce_sum, resolve_device, setup_distributed, unwrap, wrap_ddp
from core.training.evaluate import autocast_for, evaluate, use_channels_last
from core.training.runstate import (epoch_seed, log_scalars, open_tensorboard, rng_state, seed_everything,
                                    set_rng_state, write_metrics)
from core.training.steps import make_optimizer, make_scheduler, phase_step, train_step

__all__ = ["RepeatedDataset", "Trainer", "make_optimizer", "train", "train_step"]


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
        self.carry: dict = {}          # what one phase leaves a later one (PhaseContext.carry)
        self._writer = None
        self._epoch_budget: int | None = None

    class _Budget(Exception):
        """Raised after `max_epochs` epochs of this session: the run stops as if killed."""

    # -- the run ---------------------------------------------------------------------------
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
        self._writer = open_tensorboard(self.out_dir, self.config.runtime.tensorboard and self.is_main)
        phases = architecture(self.config.model.architecture).phases(self.config)
        started = {p.name for p in phases if p.name in self.completed} | {(resume_state or {}).get("phase")}
        for i, phase in enumerate(phases):
            later_begun = any(p.name in started for p in phases[i + 1:])
            if phase.name in self.completed or (isinstance(phase, OncePhase) and later_begun):
                continue
            if isinstance(phase, OncePhase):
                if self._epoch_budget is not None and self._epoch_budget <= 0:
                    raise Trainer._Budget()    # a session that has used its epochs stops before the step
                self._run_once(phase, phases)
            elif phase.epochs > 0:
                self._run_epochs(phase, phases, resume_state)
        self.net.set_trainable([])
        self.net.eval()
        final = self.out_dir / "model.pt"
        self._save("model.pt", None)
        if self._writer is not None:
            self._writer.close()
        return final

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

    def _context(self) -> PhaseContext:
        return PhaseContext(net=self.net, config=self.config, device=self.device, train_set=self.train_set,
                            plain_train_set=self.plain_train_set, out_dir=self.out_dir,
                            progress=self.progress_enabled and self.is_main, carry=self.carry)

    def _bar(self, iterable, **kw):
        return tqdm(iterable, disable=not (self.progress_enabled and self.is_main), leave=False, **kw)

    def _say(self, text: str) -> None:
        if self.is_main and self.progress_enabled:
            tqdm.write(text)

    # -- an epoch phase -----------------------------------------------------------------------
    def _run_epochs(self, phase: TrainPhase, phases: list[Phase], resume_state: dict | None) -> None:
        pc = phase.settings
        self.net.set_trainable(list(pc.lr))
        ctx = self._context()
        module = phase.module(self.net, ctx) if phase.module is not None else self.net
        if phase.optimizer_groups is not None:
            optimizer = torch.optim.Adam(phase.optimizer_groups(module, pc), betas=tuple(self.config.train.betas))
        else:
            optimizer = make_optimizer(self.net, pc, self.config.train.betas)
        scheduler = make_scheduler(optimizer, pc)
        start = 0
        if resume_state and resume_state.get("phase") == phase.name:
            start = int(resume_state["epoch"])
            if phase.load_module is not None:
                phase.load_module(module, resume_state)
            if resume_state.get("optimizer") is not None:
                optimizer.load_state_dict(resume_state["optimizer"])
            if scheduler is not None and resume_state.get("scheduler") is not None:
                scheduler.load_state_dict(resume_state["scheduler"])
        model = wrap_ddp(module, self.dist, self.device)
        for epoch in range(start, pc.epochs):
            if self._epoch_budget is not None:
                if self._epoch_budget <= 0:
                    raise Trainer._Budget()
                self._epoch_budget -= 1
            t0 = time.time()
            row = self._train_epoch(phase, phases, epoch, model, module, optimizer)
            row.update(phase=phase.name, epoch=epoch, lr=optimizer.param_groups[0]["lr"],
                       val_accuracy=self._validate(module if phase.module is not None else None)
                       if phase.validate else None)
            if scheduler is not None:
                scheduler.step()
            row["seconds"] = round(time.time() - t0, 3)
            self.history.append(row)
            stop = self._select(phase, epoch, row["val_accuracy"])
            val = "-" if row["val_accuracy"] is None else f"{row['val_accuracy']:.3f}"
            self._say(f"{phase.name} epoch {epoch + 1}/{pc.epochs}: loss {row['loss']:.4f} "
                      f"train acc {row['train_accuracy']:.3f} val acc {val}")
            if stop or epoch + 1 == pc.epochs:
                break
            state = self._training_state(phase.name, epoch + 1, optimizer, scheduler)
            if phase.save_module is not None:
                state.update(phase.save_module(module))
            self._save("last.pt", state)
            self._write_metrics()
        else:
            epoch = pc.epochs - 1   # resumed after its last epoch: nothing left to train
        if phase.on_end is not None:
            phase.on_end(module, ctx)
        self.completed.append(phase.name)
        self._continue_from_best(phase)
        self._save("last.pt", self._training_state(phase.name, epoch + 1))
        self._write_metrics()

    def _loader(self, seed: int, global_epoch: int, views: int = 1, view_data=None):
        """One epoch's batches: data.epoch_repeats passes over the training set (the paper's epoch
        over its offline-augmented set, plan.py), each image drawn `views` times (or the phase's
        own views, `view_data`, e.g. PIP-Net's shared shape transform)."""
        d = self.config.data
        train_set = self.train_set if view_data is None else view_data(self.plain_train_set, self.config)
        if float(d.epoch_repeats) != 1.0:
            train_set = RepeatedDataset(train_set, float(d.epoch_repeats))
        if views > 1 and view_data is None:
            train_set = Views(train_set, views)
        return epoch_loader(train_set, batch_size=d.batch_size, num_workers=d.num_workers,
                            generator=torch.Generator().manual_seed(seed), pin_memory=self.device.type == "cuda",
                            dist_info=self.dist, seed=self.config.runtime.seed, global_epoch=global_epoch)

    def _train_epoch(self, phase: TrainPhase, phases: list[Phase], epoch: int, model, module, optimizer) -> dict:
        from core.data import mixup

        cfg = self.config
        seed = epoch_seed(cfg.runtime.seed, phase.name, epoch)
        seed_everything(seed)
        mix_gen = torch.Generator().manual_seed(seed + 1)
        global_epoch = self._global_epoch_start(phase.name, phases) + epoch
        loader = self._loader(seed, global_epoch, phase.views, phase.view_data)
        amp_ctx = autocast_for(self.device, cfg.runtime.amp)
        model.train()
        sums: dict[str, float] = {}
        correct = total = 0
        bar = self._bar(loader, desc=f"{phase.name} {epoch + 1}")
        logged = phase.on_epoch_start(self.net, epoch) if phase.on_epoch_start is not None else {}
        mix_rng = np.random.default_rng(seed + 2)
        for images, labels, _ in bar:
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            if phase.views > 1:
                images, labels = flatten_views(images, labels)
            targets = labels
            if cfg.data.mixup and phase.mixup:
                # paper: 50:50; data.mixup_alpha > 0: lambda ~ Beta(a, a) per batch (authors' code: 0.5)
                a = float(cfg.data.mixup_alpha)
                ratio = float(mix_rng.beta(a, a)) if a > 0 else 0.5
                images, targets = mixup(images, labels, self.net.num_classes, generator=mix_gen, ratio=ratio)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            batch = Batch(images, labels, targets, views=phase.views, epoch=epoch, epochs=phase.epochs)
            logits, terms = phase_step(model, module, optimizer, batch, phase.loss, amp_ctx)
            if phase.after_step is not None:
                phase.after_step(self.net)
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
        row.update(logged)
        row["global_epoch"] = global_epoch
        return row

    def _global_epoch_start(self, name: str, phases: list[Phase]) -> int:
        """Running epoch count over the earlier phases on the global clock (metrics, the
        distributed sampler): the backbone pretraining does not count."""
        earlier: set[str] = set()
        for p in phases:
            if p.name == name:
                break
            if isinstance(p, TrainPhase) and p.global_clock:
                earlier.add(p.name)
        return sum(1 for h in self.history if h["phase"] in earlier)

    def _select(self, phase: TrainPhase, epoch: int, val_accuracy: float | None) -> bool:
        """Model selection on validation accuracy; True when early stopping ends the phase."""
        if not phase.selects_best or val_accuracy is None:
            return False
        if val_accuracy > self.best["val_accuracy"]:
            self.best = {"val_accuracy": val_accuracy, "epoch": epoch, "since": 0}
            self._save("best.pt", None)
            return False
        self.best["since"] += 1
        return phase.settings.patience > 0 and self.best["since"] >= phase.settings.patience

    def _continue_from_best(self, phase: TrainPhase) -> None:
        """After a selecting phase, continue from the epoch that was best on validation."""
        best = self.out_dir / "best.pt"
        if phase.selects_best and phase.settings.select_best and self.best["epoch"] >= 0 and best.is_file():
            if self.dist.enabled:
                torch.distributed.barrier()
            load_state(self.net, read_checkpoint(best)["state_dict"], str(best))

    # -- a once phase ----------------------------------------------------------------------------
    def _run_once(self, phase: OncePhase, phases: list[Phase]) -> None:
        result = phase.run(self._context()) or {}
        if "projection" in result:
            self.projection = result["projection"]
        if phase.logs_row:
            val = self._validate()
            self.history.append({"phase": phase.name, "epoch": 0, "val_accuracy": val,
                                 "global_epoch": self._global_epoch_start(phase.name, phases)})
            self._say(f"{phase.name}: val acc {'-' if val is None else f'{val:.3f}'}")
        self.completed.append(phase.name)
        self._save("last.pt", self._training_state(phase.name, 1))
        self._write_metrics()

    # -- validation ---------------------------------------------------------------------------
    def _validate(self, module=None) -> float | None:
        """Validation accuracy of the model, or of the module a phase trains instead."""
        if self.val_set is None or len(self.val_set) == 0:
            return None
        d = self.config.data
        if module is not None:
            return self._validate_module(unwrap(module))
        result = evaluate(self.net, self.val_set, batch_size=d.eval_batch_size, device=self.device,
                          amp=self.config.runtime.amp, channels_last=self.channels_last,
                          num_workers=d.num_workers, progress=self.progress_enabled and self.is_main,
                          desc="validate")
        return result["accuracy"]

    @torch.no_grad()
    def _validate_module(self, module) -> float:
        module.eval()
        correct = total = 0
        for images, labels, _ in DataLoader(self.val_set, batch_size=self.config.data.eval_batch_size):
            images, labels = images.to(self.device), labels.to(self.device)
            with autocast_for(self.device, self.config.runtime.amp):
                correct += int((module(images).logits.argmax(dim=1) == labels).sum())
            total += int(labels.numel())
        module.train()
        return correct / max(total, 1)

    # -- checkpoints and metrics ----------------------------------------------------------------
    def _save(self, name: str, training: dict | None) -> None:
        if self.is_main:
            save_checkpoint(self.out_dir / name, self.net, config=self.config.to_dict(), class_names=self.class_names,
                            history=self.history, projection=self.projection, training=training)

    def _training_state(self, phase: str, epoch: int, optimizer=None, scheduler=None) -> dict:
        return {"phase": phase, "epoch": epoch, "completed": list(self.completed), "best": dict(self.best),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng_state(), **({"carry": dict(self.carry)} if self.carry else {})}

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
        if stored.get("num_prototypes") != self.config.model.num_prototypes:
            raise CheckpointError(f"{path}: has {stored.get('num_prototypes')} prototypes, the config asks for "
                                  f"{self.config.model.num_prototypes}")
        load_state(self.net, payload["state_dict"], str(path))
        self.history = list(payload.get("history") or [])
        self.projection = payload.get("projection")
        training = payload.get("training") or {}
        self.completed = list(training.get("completed", []))
        self.best = dict(training.get("best", self.best))
        self.carry = dict(training.get("carry") or {})
        if training.get("evidence_head") is not None:     # last.pt written before the carry (main until issue 29)
            self.carry["evidence_head"] = training["evidence_head"]
        if training.get("rng"):
            set_rng_state(training["rng"])
        return training

    def _write_metrics(self) -> None:
        if not self.is_main:
            return
        write_metrics(self.out_dir / "metrics.csv", self.history)
        if self._writer is not None and self.history:
            log_scalars(self._writer, self.history[-1])


def train(config: Config, out_dir: str | Path, *, resume: bool = False, progress: bool | None = None) -> Path:
    """Convenience wrapper: `Trainer(config, out_dir, ...).run()`."""
    return Trainer(config, out_dir, resume=resume, progress=progress).run()
