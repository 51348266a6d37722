"""The paper's Table 4 rows as one switch each, the cluster/separation forms, the duplicate-slot
count, and the schedule in the paper's steps (`--dry-run` plan, data.epoch_repeats)."""
from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.errors import UserFacingError
from core.architectures import build_model
from core.model.ablations import ABLATIONS, TABLE4, ablation_overrides
from core.model.config import ModelConfig
from core.model.losses import LossWeights, compute_losses, topk_masks
from core.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def _cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


def _one_line(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    return lines[0]


def test_table4_rows_are_the_papers_names_each_one_switch():
    assert list(TABLE4) == ["full", "w/o L_orth", "w/o Gumbel", "w/o Gumbel and L_orth", "w/o focal similarity"]
    base = load_config(CONFIGS / "protopool-cub.yaml")
    changed = {}
    for name in ABLATIONS:
        cfg = load_config(CONFIGS / "protopool-cub.yaml", ablation_overrides(name))
        changed[name] = {(s, k) for s in ("model", "loss") for k, v in getattr(cfg, s).to_dict().items()
                         if getattr(base, s).to_dict()[k] != v}
    assert changed["full"] == set()
    assert changed["w/o L_orth"] == {("loss", "orthogonality")}
    assert changed["w/o Gumbel"] == {("model", "assignment")}
    assert changed["w/o Gumbel and L_orth"] == {("model", "assignment"), ("loss", "orthogonality")}
    assert changed["w/o focal similarity"] == {("model", "similarity")}
    assert load_config(None, ablation_overrides("w/o Gumbel")).model.assignment == "softmax"
    assert load_config(None, ablation_overrides("w/o Gumbel noise")).model.assignment == "softmax-annealed"
    with pytest.raises(UserFacingError) as err:
        ablation_overrides("w/o magic")
    assert "'w/o magic'" in str(err.value) and "'w/o Gumbel and L_orth'" in str(err.value)


def test_bad_ablation_or_assignment_is_one_line_from_another_folder(tmp_path):
    line = _one_line(_cli(["train", "--config", str(CONFIGS / "protopool-cub.yaml"), "--ablation", "w/o magic",
                           "--dry-run"], tmp_path))
    assert "'w/o magic'" in line and "'w/o Gumbel'" in line and "'w/o focal similarity'" in line
    line = _one_line(_cli(["train", "--config", str(CONFIGS / "protopool-cub.yaml"), "--set",
                           "model.assignment=sinkhorn", "--dry-run"], tmp_path))
    assert "model.assignment" in line and "'sinkhorn'" in line and "gumbel, softmax, softmax-annealed" in line
    line = _one_line(_cli(["train", "--set", "loss.cluster_separation=nearest", "--dry-run"], tmp_path))
    assert "cluster_separation" in line and "topk, differentiable" in line


def _pool(**kw):
    torch.manual_seed(0)
    cfg = dict(backbone="resnet18", weights="none", truncate="layer2", prototype_depth=8, num_prototypes=7,
               num_slots=2, num_classes=3)
    cfg.update(kw)
    return build_model(ModelConfig(**cfg))


def test_wo_gumbel_trains_softmax_q_at_temperature_one_whatever_tau():
    """The paper's w/o Gumbel: the slot scores of a training pass use softmax(q) even at
    tau = 0.001, so nothing but the logits can make a slot hard; 'w/o Gumbel noise' (ours)
    follows tau and is one-hot there."""
    x = torch.randn(2, 3, 32, 32)
    for mode, hard_at_low_tau in (("softmax", False), ("softmax-annealed", True), ("gumbel", True)):
        net = _pool(assignment=mode)
        net.train()
        net.set_tau(1e-3)
        y = net(x).assignment
        if mode == "softmax":
            torch.testing.assert_close(y, torch.softmax(net.slots.logits, dim=-1))
            torch.testing.assert_close(net.slot_distribution(), y)
        assert (float(y.detach().amax(-1).min()) > 0.99) == hard_at_low_tau, mode
        net.eval()
        assert torch.equal(net(x).assignment, net.slots.hard())        # hard at test, every mode


def test_wo_gumbel_does_not_binarise_in_a_tiny_run_where_annealing_would(tmp_path):
    """Same tiny run (slot logits at lr 0.1 for 16 steps) with the paper's w/o Gumbel and
    with the annealed softmax: at the end of joint training, the training-time slot
    distribution of w/o Gumbel is still spread (max < 0.9 for most slots), the annealed
    one is one-hot."""
    from core.data import make_synthetic
    from core.training.loop import Trainer

    birds = make_synthetic(tmp_path / "birds", classes=3, images_per_class=8, size=64, seed=1)
    spread = {}
    for name in ("w/o Gumbel", "w/o Gumbel noise"):
        cfg = load_config(CONFIGS / "tiny-synthetic.yaml",
                          [*ablation_overrides(name), f"data.root={birds}", "data.image_size=32",
                           "train.pretrain.epochs=0", "train.prototype_init=uniform", "train.warmup.epochs=1",
                           "train.joint.epochs=3", "train.tau.end_epoch=2", "train.project=false",
                           "train.last_layer.epochs=0", "data.val_fraction=0.3", "runtime.progress=false"])
        trainer = Trainer(cfg, tmp_path / name.replace("/", "-").replace(" ", "-"), progress=False)
        trainer.run()
        taus = [h["tau"] for h in trainer.history if h["phase"] == "joint"]
        assert taus[-1] == pytest.approx(1e-3)
        net = trainer.net          # the distribution its training passes used last (without noise)
        spread[name] = float((net.slot_distribution().amax(-1) > 0.9).float().mean())
        assert net.slot_binarisation(0.9) < 0.5
    assert spread["w/o Gumbel"] < 0.5 and spread["w/o Gumbel noise"] == 1.0


def test_detached_cluster_and_separation_send_no_gradient_to_slot_logits():
    net = _pool()
    net.train()
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    grads = {}
    for form in ("topk", "differentiable"):
        for term in ("cluster", "separation"):
            torch.manual_seed(1)
            out = net(x)
            w = LossWeights(cross_entropy=0, cluster=0, separation=0, orthogonality=0, l1=0, cluster_separation=form)
            setattr(w, term, 1.0)
            total, _ = compute_losses(net, out, labels, w)
            net.slots.logits.grad = None
            net.prototype_layer.prototypes.grad = None
            total.backward()
            g = net.slots.logits.grad
            grads[form, term] = 0.0 if g is None else float(g.norm())
            assert float(net.prototype_layer.prototypes.grad.norm()) > 0        # the distances do learn
    assert grads["topk", "cluster"] == 0.0 and grads["topk", "separation"] == 0.0
    assert grads["differentiable", "cluster"] > 1e-4
    assert LossWeights().cluster_separation == "topk"


def _official_dist_loss():
    """The authors' dist_loss, read from main.py of a local gmum/ProtoPool checkout."""
    repo = os.environ.get("PROTOPOOL_OFFICIAL_REPO")
    if not repo or not (Path(repo) / "main.py").is_file():
        pytest.skip("set PROTOPOOL_OFFICIAL_REPO to a local gmum/ProtoPool checkout")
    tree = ast.parse((Path(repo) / "main.py").read_text())
    fn = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "dist_loss")
    scope: dict = {"torch": torch}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "main.py", "exec"), scope)
    return scope["dist_loss"]


def test_topk_form_equals_the_authors_dist_loss():
    dist_loss = _official_dist_loss()
    torch.manual_seed(3)
    c, k, m, depth = 4, 3, 11, 16
    y = torch.softmax(torch.randn(c, k, m) * 3, dim=-1)
    labels = torch.tensor([0, 3, 2, 2, 1])
    min_d = torch.rand(len(labels), m) * depth
    own, other = topk_masks(y)
    from core.model.losses import cluster_cost, separation_cost, soft_targets

    soft = soft_targets(labels, c)
    ours_c = cluster_cost(min_d, soft, own)
    ours_s = separation_cost(min_d, soft, ~other)

    class _Shape:
        prototype_shape = (m, depth, 1, 1)

    presence = y.permute(0, 2, 1)[labels]                       # theirs: (B, M, K)
    theirs_c = dist_loss(_Shape(), min_d, presence, k)
    theirs_s = dist_loss(_Shape(), min_d, 1 - presence, m - k, sep=True)
    torch.testing.assert_close(ours_c, theirs_c)
    torch.testing.assert_close(ours_s, theirs_s)


def test_duplicate_slot_classes_counts_a_prototype_held_twice():
    net = _pool(num_slots=3)
    with torch.no_grad():
        net.slots.logits.zero_()
        for c, protos in enumerate([(0, 1, 2), (3, 3, 4), (5, 6, 5)]):
            for s, p in enumerate(protos):
                net.slots.logits[c, s, p] = 5.0
    assert net.duplicate_slot_classes() == 2


def test_dry_run_plan_matches_the_papers_steps_without_the_data(tmp_path):
    """From a folder without CUB or Cars: the paper configs' plans are computed from the
    known split sizes and are within 5 % of the paper's steps and images per phase."""
    from core.training.plan import comparisons, phase_plan, within

    for name, spe in (("protopool-cub", 2248), ("protopool-cars", 3054), ("protopnet-cub", 2248)):
        done = _cli(["train", "--config", str(CONFIGS / f"{name}.yaml"), "--dry-run"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert "within 5 % of the paper's: yes" in done.stdout and "not read" in done.stdout
        cfg = load_config(CONFIGS / f"{name}.yaml", [f"data.root={tmp_path / 'absent'}"])
        plan = phase_plan(cfg)
        assert within(plan) and plan["paper"]["steps_per_epoch"] == spe
        figures = {what: (a, b) for what, a, b in comparisons(plan)}
        assert {"warm-up steps", "last layer steps", "joint lr decay every (steps)"} <= set(figures)
        assert all(abs(a - b) <= 0.05 * b for a, b in figures.values())
        assert not list(tmp_path.iterdir())          # nothing written
    cub = phase_plan(load_config(CONFIGS / "protopool-cub.yaml", [f"data.root={tmp_path / 'absent'}"]))
    ours = cub["ours"]
    assert ours["train_size"] == 5994 - 599 and ours["per_epoch"] == round(33.3 * (5994 - 599))
    assert ours["steps_per_epoch"] == math.ceil(ours["per_epoch"] / 80)
    warm = next(r for r in ours["rows"] if r["phase"] == "warm-up")
    assert warm["steps"] == 10 * ours["steps_per_epoch"] and warm["tau"] == (1.0, 1.0)
    assert ours["milestones"]["tau at its floor from"][1] == 30 * ours["steps_per_epoch"]
    # without epoch_repeats the same config is ~33x short of the paper's steps
    short = phase_plan(load_config(CONFIGS / "protopool-cub.yaml", [f"data.root={tmp_path / 'absent'}",
                                                                       "data.epoch_repeats=1"]))
    assert not within(short)
    line = _one_line(_cli(["train", "--config", str(CONFIGS / "tiny-synthetic.yaml"), "--dry-run"], tmp_path))
    assert "train.paper" in line and "data.root" in line


def test_epoch_repeats_makes_an_epoch_of_that_many_passes(tmp_path):
    from core.data import make_synthetic
    from core.training.loop import RepeatedDataset, Trainer

    birds = make_synthetic(tmp_path / "birds", classes=3, images_per_class=8, size=64, seed=1)
    base = [f"data.root={birds}", "data.image_size=32", "data.val_fraction=0.3", "runtime.progress=false"]
    trainer = Trainer(load_config(CONFIGS / "tiny-synthetic.yaml", [*base, "data.epoch_repeats=2.5"]), tmp_path / "r")
    trainer._load_data()
    n = len(trainer.train_set)
    loader = trainer._loader(0, 0)
    assert len(loader.dataset) == round(2.5 * n) and len(loader) == math.ceil(round(2.5 * n) / 8)
    seen = [int(i) for _, _, idx in loader for i in idx]
    assert sorted(set(seen)) == list(range(n)) and len(seen) == round(2.5 * n)
    one = Trainer(load_config(CONFIGS / "tiny-synthetic.yaml", base), tmp_path / "s")
    one._load_data()
    assert one._loader(0, 0).dataset is one.train_set        # 1.0: the loader is unchanged
    assert len(RepeatedDataset(one.train_set, 0.01)) == 1
    with pytest.raises(UserFacingError, match="epoch_repeats"):
        load_config(CONFIGS / "tiny-synthetic.yaml", ["data.epoch_repeats=0"])
