"""End-to-end CPU training on the synthetic birds: learning, binarised slots, resume, CLIs."""
import csv
from pathlib import Path

import pytest
import torch

from core.cli import main as core_main
from core.data import make_synthetic
from core.errors import CheckpointError
from core.model.pretrain_head import PretrainClassifier, evidence_cells
from core.model.seeding import seeding_phase
from core.training.checkpoint import load_checkpoint
from core.training.config import load_config
from core.training.loop import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-synthetic.yaml"


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("train") / "birds", classes=5, images_per_class=30, seed=0)


def test_tiny_training_learns_and_binarises_slots_at_temperature_one(birds, tmp_path, capsys):
    """What the paper claims of the full model, checked with wide margins: it learns
    (test accuracy far above chance), the warm-up at tau = 1 learns instead of collapsing,
    and the assignment binarises at temperature 1 (softmax(q), no tau: at the final tau
    every slot is one-hot by construction), with distinct prototypes in each class."""
    out = tmp_path / "run"
    # the demo config, shortened: on 64 training images an epoch is 8 steps, so the warm-up
    # (tau = 1, cheap: frozen backbone) gets more epochs to give the slots their steps
    # (the paper's uniform prototype initialisation: with the demo's k-means++ seeding the
    # slots of 2 of the 5 classes settle on a repeated prototype in this short run; and no
    # local reconstruction: it serves the naming of the full-length demo, while here it takes
    # the 8 pretraining epochs from the class: test accuracy 0.80 without, 0.45 at 2.0, 0.25
    # at the config's 4.0)
    short = {"train.pretrain.epochs": 8, "train.warmup.epochs": 20, "train.joint.epochs": 10,
             "train.tau.end_epoch": 5, "train.last_layer.epochs": 4, "train.prototype_init": "uniform",
             "train.pretrain_local": 0.0}
    sets = [x for k, v in short.items() for x in ("--set", f"{k}={v}")]
    rc = core_main(["train", "--config", str(CONFIG), "--set", f"data.root={birds}", *sets, "--out", str(out),
                    "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "# plan of protopool-tiny-synthetic" in printed and "warm-up                20" in printed
    model, meta = load_checkpoint(out / "model.pt", expect_architecture="protopool", expect_num_classes=5)
    history = meta["history"]
    # the schedule: tau = 1 through warm-up and joint epoch 0, then 1/sqrt(alpha e), floor from epoch 10
    assert all(h["tau"] == 1.0 for h in history if h["phase"] == "warmup")
    joint = [h for h in history if h["phase"] == "joint"]
    assert joint[0]["tau"] == 1.0
    assert joint[1]["tau"] == pytest.approx((1e-6 * 5) ** 0.5, rel=1e-6)   # 1/sqrt(alpha), alpha = 1/(0.001^2 * 5)
    assert joint[-1]["tau"] == pytest.approx(1e-3)
    # the warm-up learns (no collapse to chance, 0.2): measured 0.80 at its last epoch
    warm = [h["train_accuracy"] for h in history if h["phase"] == "warmup"]
    assert warm[-1] >= 0.5 and warm[-1] > warm[0] + 0.2, warm
    # binarised at temperature 1: most slots put > 0.9 of softmax(q) on one prototype (measured 0.9)
    assert model.slot_binarisation(0.9) >= 0.6, model.slot_binarisation(0.9)
    probs = model.slot_probabilities().detach()
    assert torch.equal(probs.argmax(-1), model.hard_assignment().argmax(-1))
    # L_orth did its job: within each class the K slots hold distinct prototypes
    chosen = model.hard_assignment().argmax(-1)
    assert all(len(set(row.tolist())) == row.numel() for row in chosen)
    # projection records every assigned prototype; boxes are in original-image pixels
    classes = model.prototype_classes()
    assert all((rec is None) == (not cls) for rec, cls in zip(meta["projection"], classes))
    assert any(rec is not None for rec in meta["projection"])
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    phases = [r["phase"] for r in rows]
    assert phases[0] == "pretrain" and "warmup" in phases and "projection" in phases and phases[-1] == "last_layer"
    # held-out test accuracy, hard assignment, through the evaluate CLI: far above chance (0.2)
    capsys.readouterr()
    rc = core_main(["evaluate", "--checkpoint", str(out / "model.pt"), "--data", str(birds), "--split", "test",
                    "--json", str(tmp_path / "eval.json"), "--no-progress"])
    assert rc == 0
    import json
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["n"] == 75 and result["accuracy"] >= 0.4, result   # chance: 0.2; measured 0.80
    # the project CLI re-projects in place: prototypes sit exactly on their source patches
    rc = core_main(["project", "--checkpoint", str(out / "model.pt"), "--out", str(tmp_path / "p.pt"),
                    "--no-progress"])
    assert rc == 0
    projected, meta2 = load_checkpoint(tmp_path / "p.pt")
    assert [None if r is None else r["cell"] for r in meta2["projection"]] == \
           [None if r is None else r["cell"] for r in meta["projection"]]


def _short(birds, **extra):
    overrides = [f"data.root={birds}", "train.pretrain.epochs=1", "train.warmup.epochs=1", "train.joint.epochs=2",
                 "train.last_layer.epochs=1",
                 "train.joint.lr_step=1", "runtime.progress=false"]
    overrides += [f"{k}={v}" for k, v in extra.items()]
    return load_config(CONFIG, overrides)


def test_resume_reproduces_the_uninterrupted_run(birds, tmp_path):
    full = Trainer(_short(birds), tmp_path / "full", progress=False)
    full.run()
    part = Trainer(_short(birds), tmp_path / "part", progress=False)
    assert part.run(max_epochs=3) is None          # "killed" after pretrain, warm-up and joint epoch 0
    assert not (tmp_path / "part" / "model.pt").exists()
    resumed = Trainer(_short(birds), tmp_path / "part", resume=True, progress=False)
    resumed.run()
    a = load_checkpoint(tmp_path / "full" / "model.pt")[0].state_dict()
    b = load_checkpoint(tmp_path / "part" / "model.pt")[0].state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    keys = ["phase", "epoch", "loss", "val_accuracy"]
    ha = [[row.get(k) for k in keys] for row in full.history]
    hb = [[row.get(k) for k in keys] for row in resumed.history]
    assert len(ha) == len(hb)
    for ra, rb in zip(ha, hb):
        assert ra[:2] == rb[:2]
        assert (ra[2] is None and rb[2] is None) or ra[2] == pytest.approx(rb[2], rel=1e-5)
        assert ra[3] == rb[3]


def test_resume_with_another_architecture_is_refused(birds, tmp_path):
    Trainer(_short(birds), tmp_path / "run", progress=False).run(max_epochs=1)
    cfg = _short(birds, **{"model.architecture": "protopnet", "model.num_prototypes": "null"})
    with pytest.raises(CheckpointError, match="architecture"):
        Trainer(cfg, tmp_path / "run", resume=True, progress=False).run()


def test_killed_process_resumes_to_the_same_model(birds, tmp_path):
    """SIGKILL a real `python -m core train` once it has written last.pt; --resume finishes it."""
    sets = [f"data.root={birds}", "train.pretrain.epochs=1", "train.warmup.epochs=1", "train.joint.epochs=3",
            "train.last_layer.epochs=1", "train.joint.lr_step=1", "runtime.progress=false", "runtime.threads=1"]
    args = ["train", "--config", str(CONFIG), "--no-progress"] + [x for s in sets for x in ("--set", s)]
    threads = torch.get_num_threads()   # runtime.threads=1 (same numerics in both processes) is global
    try:
        _killed_and_resumed(args, sets, tmp_path)
    finally:
        torch.set_num_threads(threads)


def _killed_and_resumed(args, sets, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    Trainer(load_config(CONFIG, sets), tmp_path / "full", progress=False).run()
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "core", *args, "--out", str(out)],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (out / "last.pt").exists()
    assert core_main(args + ["--out", str(out), "--resume"]) == 0
    a = load_checkpoint(tmp_path / "full" / "model.pt")[0].state_dict()
    b = load_checkpoint(out / "model.pt")[0].state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_kmeans_plus_plus_seeds_prototypes_on_distinct_feature_cells(birds, tmp_path):
    """train.prototype_init=kmeans++: at the start of warm-up every prototype is the feature
    vector of a real cell of a training image, no two alike, spread out farther than
    uniform prototypes (which sit in the middle of the sigmoid cube, where bland cells are)."""
    import numpy as np

    cfg = _short(birds, **{"train.prototype_init": "kmeans++", "train.warmup.epochs": 0, "train.joint.epochs": 0,
                           "train.last_layer.epochs": 0, "train.project": "false"})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.run(max_epochs=1)           # pretrain only
    seeding_phase(cfg).run(trainer._context())
    net, ds = trainer.net.eval(), trainer.train_set
    with torch.no_grad():
        x = torch.stack([ds.normalize(np.ascontiguousarray(ds.load_rgb(i).transpose(2, 0, 1))) for i in range(len(ds))])
        cells = net.features(x).permute(0, 2, 3, 1).reshape(-1, net.prototypes.shape[1])
    protos = net.prototypes.detach()
    nearest = torch.cdist(protos, cells, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert float(nearest.max()) < 1e-5                     # each one is a cell of a training image
    assert len({tuple(p.tolist()) for p in protos}) == protos.shape[0]
    spread = float(torch.cdist(protos, protos).sum() / (protos.shape[0] * (protos.shape[0] - 1)))
    uniform = torch.rand(protos.shape, generator=torch.Generator().manual_seed(0))
    assert float(((protos - 0.5).abs()).mean()) > float(((uniform - 0.5).abs()).mean())
    assert spread > 0.3
    # deterministic: the same seed picks the same cells
    again = Trainer(cfg, tmp_path / "run2", progress=False)
    again.run(max_epochs=1)
    seeding_phase(cfg).run(again._context())
    torch.testing.assert_close(again.net.prototypes.detach(), protos)


def test_evidence_cells_keep_each_images_top_scoring_cells():
    """The cells kept are, per image, the `share` of its cells with the highest score for
    the image's own class (w_label . f): another class's weights would pick others."""
    feats = torch.zeros(2, 2, 2, 5)             # (B, D, H, W): 10 cells per image
    feats[:, 0] = torch.arange(10.0).reshape(2, 5)          # channel 0 rises along the cells
    feats[:, 1] = -torch.arange(10.0).reshape(2, 5)         # channel 1 falls
    head = torch.tensor([[1.0, 0.0], [0.0, 1.0]])           # class 0 reads channel 0, class 1 channel 1
    mask = evidence_cells(feats, head, torch.tensor([0, 1]), 0.3).reshape(2, 10)
    assert mask[0].nonzero().flatten().tolist() == [7, 8, 9]   # class 0: the last three cells
    assert mask[1].nonzero().flatten().tolist() == [0, 1, 2]   # class 1: the first three
    assert int(evidence_cells(feats, head, torch.tensor([0, 1]), 0.01).sum()) == 2   # at least one each


def test_evidence_seeding_starts_prototypes_on_class_evidence(birds, tmp_path):
    """train.prototype_init_evidence: every prototype is seeded on a cell that the
    pretraining head scores among the top share of its image for the image's class; the
    head waits in last.pt between pretraining and seeding, and is dropped after it."""
    import numpy as np

    cfg = _short(birds, **{"train.prototype_init": "kmeans++", "train.prototype_init_evidence": 0.25,
                           "train.warmup.epochs": 0, "train.joint.epochs": 0, "train.last_layer.epochs": 0,
                           "train.project": "false"})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.run(max_epochs=1)           # pretrain only
    head = load_checkpoint(tmp_path / "run" / "last.pt")[1]["training"]["carry"]["evidence_head"]
    assert set(head) == {"weight", "bias"}
    seeding_phase(cfg).run(trainer._context())
    assert "evidence_head" not in trainer.carry
    net, ds = trainer.net.eval(), trainer.train_set
    with torch.no_grad():
        x = torch.stack([ds.normalize(np.ascontiguousarray(ds.load_rgb(i).transpose(2, 0, 1))) for i in range(len(ds))])
        base = net.backbone(x)
        cells = net.add_on(base).permute(0, 2, 3, 1).reshape(-1, net.prototypes.shape[1])
        labels = torch.as_tensor([int(r.label) for r in ds.records])
        kept = evidence_cells(base, head["weight"], labels, 0.25)
    protos = net.prototypes.detach()
    to_kept = torch.cdist(protos, cells[kept], compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    to_left = torch.cdist(protos, cells[~kept], compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert float(to_kept.max()) < 1e-5 and float(to_left.min()) > 1e-4


def test_resume_between_pretraining_and_evidence_seeding(birds, tmp_path):
    """Killed after pretraining, before the prototypes are seeded: the resumed run seeds
    from the saved head and ends with the same model as an uninterrupted run."""
    cfg = {"train.prototype_init": "kmeans++", "train.prototype_init_evidence": 0.3, "train.joint.epochs": 1,
           "train.last_layer.epochs": 0}
    Trainer(_short(birds, **cfg), tmp_path / "full", progress=False).run()
    part = Trainer(_short(birds, **cfg), tmp_path / "part", progress=False)
    assert part.run(max_epochs=1) is None
    # a last.pt without the head (written before the option existed) is refused in one line
    payload = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    head = payload["training"].pop("carry")["evidence_head"]
    (tmp_path / "old").mkdir()
    torch.save(payload, tmp_path / "old" / "last.pt")
    # main before issue 29 kept the head at the top of the training state: it still resumes
    payload["training"]["evidence_head"] = head
    (tmp_path / "main").mkdir()
    torch.save(payload, tmp_path / "main" / "last.pt")
    Trainer(_short(birds, **cfg), tmp_path / "main", resume=True, progress=False).run()
    with pytest.raises(CheckpointError, match=r"old/last.pt: no pretraining head .* without --resume"):
        Trainer(_short(birds, **cfg), tmp_path / "old", resume=True, progress=False).run()
    Trainer(_short(birds, **cfg), tmp_path / "part", resume=True, progress=False).run()
    a = load_checkpoint(tmp_path / "full" / "model.pt")[0].state_dict()
    b = load_checkpoint(tmp_path / "part" / "model.pt")[0].state_dict()
    c = load_checkpoint(tmp_path / "main" / "model.pt")[0].state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
        torch.testing.assert_close(a[key], c[key], rtol=1e-5, atol=1e-6, msg=key)
    assert "carry" not in load_checkpoint(tmp_path / "part" / "last.pt")[1]["training"]


@pytest.mark.parametrize("extra, words", [
    ({"train.prototype_init_evidence": 0}, "share in (0, 1]"),
    ({"train.prototype_init_evidence": 1.5}, "share in (0, 1]"),
    ({"train.prototype_init_evidence": 0.3, "train.prototype_init": "uniform"}, "needs train.prototype_init: kmeans++"),
    ({"train.prototype_init_evidence": 0.3, "train.pretrain.epochs": 0}, "pretrain.epochs > 0"),
])
def test_prototype_init_evidence_is_validated(birds, extra, words):
    from core.errors import UserFacingError

    with pytest.raises(UserFacingError, match="prototype_init_evidence") as err:
        _short(birds, **extra)
    assert words in str(err.value)


def test_prototype_init_is_validated(birds):
    from core.errors import UserFacingError

    with pytest.raises(UserFacingError, match="prototype_init"):
        _short(birds, **{"train.prototype_init": "random"})


def test_local_reconstruction_target_is_each_cells_sub_square_colours():
    """train.pretrain_local: the target of cell (r, c) is the mean colour of its 2 x 2
    sub-squares, channel-major (12 numbers), taken from that cell's own pixels."""
    img = torch.zeros(1, 3, 16, 16)
    img[0, 0, 0:4, 4:8] = 1.0            # red: top-right sub-square of cell (0, 0) (cells are 8 x 8 px)
    img[0, 2, 12:16, 8:12] = 2.0         # blue: bottom-left sub-square of cell (1, 1)
    target = PretrainClassifier.local_target(img, (2, 2))
    assert target.shape == (1, 12, 2, 2)
    # channel order of pixel_unshuffle: colour c, then sub-row i, sub-column j -> 4c + 2i + j
    assert float(target[0, 0 * 4 + 0 * 2 + 1, 0, 0]) == 1.0 and float(target[0, :, 0, 0].sum()) == 1.0
    assert float(target[0, 2 * 4 + 1 * 2 + 0, 1, 1]) == 2.0 and float(target[0, :, 1, 1].sum()) == 2.0
    assert float(target[0, :, 0, 1].abs().sum()) == 0.0 and float(target[0, :, 1, 0].abs().sum()) == 0.0


def test_pretraining_with_local_reconstruction_learns_it(birds, tmp_path):
    """The local term is trained (its loss falls over pretraining epochs and is logged) and
    its head is thrown away: the checkpoint is the same model as without the term."""
    cfg = _short(birds, **{"train.pretrain.epochs": 3, "train.pretrain_local": 1.0, "train.warmup.epochs": 0,
                           "train.joint.epochs": 0, "train.last_layer.epochs": 0, "train.project": "false"})
    Trainer(cfg, tmp_path / "run", progress=False).run()
    with open(tmp_path / "run" / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["phase"] == "pretrain"]
    rec = [float(r["local_reconstruction"]) for r in rows]
    assert len(rec) == 3 and rec[-1] < 0.8 * rec[0]
    assert all(float(r["loss"]) > float(r["cross_entropy"]) for r in rows)
    model, _ = load_checkpoint(tmp_path / "run" / "model.pt")
    assert not any("local_head" in k or k.startswith("head.") for k in model.state_dict())


def test_pretrain_local_is_validated(birds):
    from core.errors import UserFacingError

    with pytest.raises(UserFacingError, match="pretrain_local"):
        _short(birds, **{"train.pretrain_local": -1})


def test_resume_in_pretraining_keeps_the_local_head(birds, tmp_path):
    """Killed between two pretraining epochs, the run resumes with both throw-away heads
    (class and local) and ends with the same backbone as an uninterrupted run."""
    cfg = {"train.pretrain.epochs": 2, "train.pretrain_local": 1.0, "train.warmup.epochs": 0,
           "train.joint.epochs": 0, "train.last_layer.epochs": 0, "train.project": "false"}
    Trainer(_short(birds, **cfg), tmp_path / "full", progress=False).run()
    part = Trainer(_short(birds, **cfg), tmp_path / "part", progress=False)
    assert part.run(max_epochs=1) is None
    state = load_checkpoint(tmp_path / "part" / "last.pt")[1]["training"]
    assert state["phase"] == "pretrain" and set(state["pretrain_local_head"]) == {"weight", "bias"}
    Trainer(_short(birds, **cfg), tmp_path / "part", resume=True, progress=False).run()
    a = load_checkpoint(tmp_path / "full" / "model.pt")[0].state_dict()
    b = load_checkpoint(tmp_path / "part" / "model.pt")[0].state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
