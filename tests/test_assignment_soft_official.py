"""`--assignment soft`: an official ProtoPool trained without --pp_gumbel, evaluated as the
authors' code evaluates it (softmax(q), `gumbel_scale=0`), gives their logits to 1e-5.

The authors' code is read from a local checkout of gmum/ProtoPool named by the
environment variable PROTOPOOL_OFFICIAL_REPO (never committed, never downloaded); the
comparison is skipped without it. Their model is built, saved with their `save_model`
format and run in a separate process (their module names `model`, `resnet_features`
would clash with other tests' stand-ins); ours imports the file through
`python -m core import-checkpoint`, as a user does.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.errors import UserFacingError

ROOT = Path(__file__).resolve().parent.parent
REPO = os.environ.get("PROTOPOOL_OFFICIAL_REPO")

OFFICIAL_SCRIPT = r"""
import sys
import torch
sys.path.insert(0, sys.argv[1])
import model as official
torch.manual_seed(0)
net = official.PrototypeChooser(num_prototypes=7, num_descriptive=2, num_classes=3, use_thresh=True,
                                arch="resnet18", pretrained=False, add_on_layers_type="log",
                                prototype_activation_function="log", proto_depth=16, use_last_layer=True)
with torch.no_grad():
    net.proto_presence.normal_(0.0, 1.0)       # trained without --pp_gumbel: far from one-hot
    net.last_layer.weight.add_(0.1 * torch.randn_like(net.last_layer.weight))
net.eval()
x = torch.rand(4, 3, 64, 64)
with torch.no_grad():
    soft = net(x, gumbel_scale=0)[0]
torch.save({"model_state_dict": net.state_dict(), "epoch": 7}, sys.argv[2])
torch.save({"x": x, "soft": soft}, sys.argv[3])
"""


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300, **kw)


@pytest.mark.skipif(not REPO or not (Path(REPO) / "model.py").is_file(),
                    reason="set PROTOPOOL_OFFICIAL_REPO to a local gmum/ProtoPool checkout")
def test_soft_assignment_matches_the_authors_evaluation(tmp_path):
    from core.training.checkpoint import load_checkpoint
    from core.training.evaluate_cli import set_eval_assignment

    official, expected = tmp_path / "best_model.pth", tmp_path / "expected.pt"
    done = _run(["-c", OFFICIAL_SCRIPT, REPO, str(official), str(expected)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = tmp_path / "ours.pt"
    done = _run(["-m", "core", "import-checkpoint", "--official", str(official), "--kind", "protopool",
                 "--out", str(ours), "--image-size", "64"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not binarised" in done.stdout and "--assignment soft" in done.stdout
    ref = torch.load(expected, weights_only=True)
    model, _ = load_checkpoint(ours)
    with torch.no_grad():
        hard = model(ref["x"]).logits
        set_eval_assignment(model, "soft", str(ours))
        soft = model(ref["x"]).logits
    torch.testing.assert_close(soft, ref["soft"], rtol=0, atol=1e-5)
    assert (hard - ref["soft"]).abs().max() > 1e-3          # the hard assignment does differ


def test_assignment_option_errors_are_one_line(tmp_path):
    from core.architectures import build_model
    from core.model.config import ModelConfig
    from core.training.evaluate_cli import set_eval_assignment

    pool = build_model(ModelConfig(backbone="resnet18", weights="none", truncate="layer2", prototype_depth=8,
                                   num_prototypes=4, num_slots=2, num_classes=2))
    with pytest.raises(UserFacingError) as err:
        set_eval_assignment(pool, "gumbel", "x.pt")
    assert str(err.value) == "--assignment: 'gumbel' is not an evaluation assignment; valid: hard, soft"
    pnet = build_model(ModelConfig(architecture="protopnet", backbone="resnet18", weights="none", truncate="layer2",
                                   prototype_depth=8, num_prototypes=None, prototypes_per_class=2, num_classes=2))
    with pytest.raises(UserFacingError, match="not a ProtoPool model"):
        set_eval_assignment(pnet, "soft", "x.pt")
    set_eval_assignment(pnet, "hard", "x.pt")                 # nothing to do
    done = _run(["-m", "core", "evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--assignment", "sooft"],
                cwd=tmp_path)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "sooft" in lines[0] and "hard, soft" in lines[0]
