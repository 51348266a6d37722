"""PIP-Net checkpoints of the authors' code (M-Nauta/PIPNet) import with their outputs exactly.

The parity tests need a local checkout of their code (nothing of it is committed):

    PROTOPROTO_PIPNET_REPO=/path/to/PIPNet pytest tests/test_pipnet_official.py

tests/pipnet_official_writer.py builds their networks (ResNet-18 with and without the
1x1 add-on and bias, ResNet-50, ConvNeXt-tiny 26 and 13), saves them as their main.py does
(with `module.` prefixes from nn.DataParallel, one case without) in a process of its own,
with their outputs on random inputs; ours must match to 1e-5. The error tests below run
without their code, on files written in their layout from our own model.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.errors import CheckpointError
from core.pipnet.model import PIPNetConfig, build_pipnet
from core.pipnet.official import load_official_pipnet

ROOT = Path(__file__).resolve().parent.parent
ENV = "PROTOPROTO_PIPNET_REPO"
NAMES = ("resnet18-default", "resnet18-addon-bias-bare", "resnet50", "convnext26", "convnext13-addon")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, dict]:
    repo = os.environ.get(ENV)
    if not repo:
        pytest.skip(f"set {ENV} to a checkout of M-Nauta/PIPNet")
    out = tmp_path_factory.mktemp("official-pipnet")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "pipnet_official_writer.py"), repo, str(out)],
                          cwd=out, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {c["name"]: c for c in torch.load(out / "manifest.pt", weights_only=True)}


@pytest.mark.parametrize("name", NAMES)
def test_logits_equal_the_authors_forward(written, name):
    case = written[name]
    net = case["net"] if case["net"].startswith("convnext") else None
    model, report = load_official_pipnet(case["file"], net=net)
    assert report["backbone"] == case["net"]
    with torch.no_grad():
        out = model(case["x"])
        inf = model(case["x"], inference=True)
    gap = float((out.logits - case["logits"]).abs().max())
    print(f"{name}: max |logit difference| {gap:.2e} (logit std {float(case['logits'].std()):.3g})")
    assert float(case["logits"].std()) > 1e-3
    torch.testing.assert_close(out.logits, case["logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.presence, case["pooled"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.maps, case["maps"], atol=1e-5, rtol=0)
    torch.testing.assert_close(inf.logits, case["logits_inference"], atol=1e-5, rtol=0)
    torch.testing.assert_close(inf.presence, case["pooled_inference"], atol=1e-5, rtol=0)


def test_prefixed_and_bare_files_both_written(written):
    prefixed = {n: c["prefixed"] for n, c in written.items()}
    assert prefixed["resnet18-default"] and not prefixed["resnet18-addon-bias-bare"]
    keys = torch.load(written["resnet18-default"]["file"], weights_only=True)["model_state_dict"]
    assert all(k.startswith("module.") for k in keys)


# --- without the authors' code: files in their layout written from our model ----------------

def _theirs(model, prefix: str = "module.") -> dict[str, torch.Tensor]:
    back = (("backbone.", "_net."), ("add_on.", "_add_on.0."), ("classifier.", "_classification."))
    out = {}
    for k, v in model.state_dict().items():
        for mine, theirs in back:
            if k.startswith(mine):
                out[prefix + theirs + k[len(mine):]] = v.clone()
    out[prefix + "_multiplier"] = model.classifier.normalization_multiplier.detach().clone()
    return out


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_pipnet(PIPNetConfig(backbone="resnet18", weights="none", num_prototypes=16, bias=True,
                                     num_classes=5)).eval()


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_own_model_round_trips_through_their_layout(tmp_path, tiny, prefix):
    path = tmp_path / "net_trained"
    torch.save({"model_state_dict": _theirs(tiny, prefix), "optimizer_net_state_dict": {"state": {},
                "param_groups": []}}, path)
    model, report = load_official_pipnet(path)
    assert report["num_prototypes"] == 16 and report["bias"] and report["backbone"] == "resnet18"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x).logits, tiny(x).logits)


def _error(path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_official_pipnet(path)
    text = str(err.value)
    assert "\n" not in text and str(path) in text
    return text


def test_wrong_files_give_one_line_naming_file_and_key(tmp_path, tiny):
    state = _theirs(tiny)
    no_dict = tmp_path / "plain.pt"
    torch.save({"state_dict": state}, no_dict)
    assert "model_state_dict" in _error(no_dict)
    missing = tmp_path / "missing.pt"
    torch.save({"model_state_dict": {k: v for k, v in state.items() if "layer3.0.conv1" not in k}}, missing)
    assert "'_net.layer3.0.conv1.weight'" in _error(missing)
    unexpected = tmp_path / "unexpected.pt"
    torch.save({"model_state_dict": {**state, "module.prototype_vectors": torch.zeros(3)}}, unexpected)
    assert "'prototype_vectors'" in _error(unexpected)
    extra = tmp_path / "extra.pt"
    torch.save({"model_state_dict": {**state, "module._net.layer9.weight": torch.zeros(3)}}, extra)
    assert "unexpected key '_net.layer9.weight'" in _error(extra)
    shape = tmp_path / "shape.pt"
    torch.save({"model_state_dict": {**state, "module._add_on.0.bias": torch.zeros(3)}}, shape)
    assert "add_on.bias" in _error(shape)
    absent = tmp_path / "absent.pt"
    assert "does not exist" in _error(absent)


def test_a_crafted_pickle_is_refused_without_running(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "ran"),))

    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": {"x": Evil()}}, path, pickle_module=pickle)
    text = _error(path)
    assert "system" in text and not (tmp_path / "ran").exists()


# --- through the command line: python -m core import-checkpoint --kind pipnet ------------------

def _import_cli(path, out, net=None):
    from core.imports.cli import main
    from core.training.checkpoint import load_checkpoint

    assert main(["--official", str(path), "--kind", "pipnet", "--out", str(out), *(["--net", net] if net else [])]) == 0
    return load_checkpoint(out, expect_architecture="pipnet")


@pytest.mark.parametrize("name", NAMES)
def test_cli_import_gives_our_checkpoint_with_the_authors_logits(written, name, tmp_path):
    case = written[name]
    net = case["net"] if case["net"].startswith("convnext") else None
    model, meta = _import_cli(case["file"], tmp_path / "ours.pt", net)
    with torch.no_grad():
        out = model(case["x"])
    gap = float((out.logits - case["logits"]).abs().max())
    print(f"{name} through the CLI and our checkpoint: max |logit difference| {gap:.2e}")
    torch.testing.assert_close(out.logits, case["logits"], atol=1e-5, rtol=0)
    assert meta["history"][0]["phase"] == "import" and meta["config"]["model"]["backbone"] == case["net"]


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_cli_import_of_a_file_in_their_layout(tmp_path, tiny, prefix):
    path = tmp_path / "net_trained"
    torch.save({"model_state_dict": _theirs(tiny, prefix)}, path)
    model, meta = _import_cli(path, tmp_path / "ours.pt")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, tiny(x).logits, atol=1e-6, rtol=0)
    assert meta["config"]["model"]["architecture"] == "pipnet" and meta["config"]["model"]["bias"] is True
    assert model.num_prototypes == 16 and model.num_classes == 5


def test_cli_refuses_net_for_other_kinds(tmp_path):
    from core.errors import UserFacingError
    from core.imports.cli import main

    with pytest.raises(UserFacingError, match="--net: only for --kind pipnet"):
        main(["--official", str(tmp_path / "x.pth"), "--kind", "protopool", "--out", str(tmp_path / "o.pt"),
              "--net", "convnext_tiny_13"])
