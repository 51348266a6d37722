"""import-checkpoint against files written by the authors' own code (a local checkout).

The official repositories are not part of this project (nothing of them is committed).
Point these variables at checkouts to run the tests; each test is skipped without its one:

    PROTOPROTO_PROTOPNET_REPO    cfchen-duke/ProtoPNet
    PROTOPROTO_PROTOPSHARE_REPO  gmum/ProtoPShare
    PROTOPROTO_PROTOPOOL_REPO    gmum/ProtoPool

tests/official_writers.py builds the models with their constructors, edits them with
their functions and saves them as their scripts do, in a process of its own, together
with the logits of their forward; here the files go through `python -m core
import-checkpoint` and our model's logits must equal theirs to 1e-5.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
ENV = {"protopnet": "PROTOPROTO_PROTOPNET_REPO", "protopshare": "PROTOPROTO_PROTOPSHARE_REPO",
       "protopool": "PROTOPROTO_PROTOPOOL_REPO"}
_WRITTEN: dict[str, dict] = {}


def written(which: str, tmp_path_factory) -> dict[str, dict]:
    """The cases written by the authors' code of `which` (once per session), by name."""
    repo = os.environ.get(ENV[which])
    if not repo:
        pytest.skip(f"set {ENV[which]} to a checkout of the official {which} code")
    if which not in _WRITTEN:
        out = tmp_path_factory.mktemp(f"official-{which}")
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
        proc = subprocess.run([sys.executable, str(ROOT / "tests" / "official_writers.py"), which, repo, str(out)],
                              cwd=out, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        cases = torch.load(out / "manifest.pt", weights_only=True)
        _WRITTEN[which] = {case["name"]: case for case in cases}
    return _WRITTEN[which]


def _import(tmp_path, case, *extra, fresh_process=False):
    out = tmp_path / f"ours-{case['name']}.pt"
    argv = ["import-checkpoint", "--official", case["file"], "--kind", case["kind"], "--out", str(out),
            "--image-size", str(case["size"]), *extra]
    if fresh_process:   # the path a user takes: another folder, a process without their classes
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-m", "core", *argv], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        return proc.returncode, proc.stdout, proc.stderr, out
    import contextlib
    import io

    from core.cli import main
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, stdout.getvalue(), stderr.getvalue(), out


def _same_logits(case, out):
    model, meta = load_checkpoint(out)
    with torch.no_grad():
        got = model(case["x"]).logits
    gap = float((got - case["logits"]).abs().max())
    print(f"{case['name']}: max |logit difference| {gap:.2e} (logits span {float(case['logits'].std()):.3g})")
    assert float(case["logits"].std()) > 1e-3            # not a degenerate comparison
    torch.testing.assert_close(got, case["logits"], atol=1e-5, rtol=0)
    return model, meta


def _identity(model) -> torch.Tensor:
    return model.class_prototype_mask().t().float()


def test_protopnet_default_vgg19_bottleneck_saved_by_save_model_w_condition(tmp_path, tmp_path_factory):
    case = written("protopnet", tmp_path_factory)["default-vgg19-bottleneck"]
    assert Path(case["file"]).name == "10push0.8000.pth" and case["add_on"] == [256, 256, 128, 128]
    code, stdout, stderr, out = _import(tmp_path, case, fresh_process=True)
    assert code == 0, stderr
    model, meta = _same_logits(case, out)
    cfg = meta["config"]["model"]
    assert (cfg["backbone"], cfg["add_on_type"], cfg["num_prototypes"], model.num_classes) == (
        "vgg19", "bottleneck", 2000, 200)
    assert [m.out_channels for m in model.add_on if isinstance(m, torch.nn.Conv2d)] == [256, 256, 128, 128]
    assert meta["history"][0]["class_identity"] == "pickled"


@pytest.mark.parametrize("arch", ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"])
def test_every_vgg_backbone_of_protopnet(arch, tmp_path, tmp_path_factory):
    cases = written("protopnet", tmp_path_factory)
    case = next(c for c in cases.values() if c.get("backbone") == arch)
    code, _, stderr, out = _import(tmp_path, case)
    assert code == 0, stderr
    _, meta = _same_logits(case, out)
    assert meta["config"]["model"]["backbone"] == arch
    assert meta["config"]["model"]["add_on_type"] == case["name"].split("-")[1]


@pytest.mark.parametrize("name", ["legacy-resnet18", "legacy-vgg11_bn"])
def test_legacy_whole_model_pickles(name, tmp_path, tmp_path_factory):
    case = written("protopnet", tmp_path_factory)[name]
    with open(case["file"], "rb") as fh:
        assert fh.read(2) != b"PK"          # not a zip archive: the format of PyTorch < 1.6
    code, _, stderr, out = _import(tmp_path, case, fresh_process=name == "legacy-vgg11_bn")
    assert code == 0, stderr
    _same_logits(case, out)


def test_pruned_state_dict_infers_the_class_identity(tmp_path, tmp_path_factory):
    case = written("protopnet", tmp_path_factory)["pruned-17-state-dict"]
    code, _, stderr, out = _import(tmp_path, case)
    assert code == 0, stderr
    model, meta = _same_logits(case, out)
    assert torch.equal(_identity(model), case["identity"])
    assert meta["history"][0]["class_identity"] == "last-layer"


def test_pruned_state_dict_where_the_order_rule_misleads_needs_the_flag(tmp_path, tmp_path_factory):
    case = written("protopnet", tmp_path_factory)["pruned-15-state-dict"]
    code, _, stderr, out = _import(tmp_path, case)
    assert code == 1 and not out.exists()
    assert stderr.strip().count("\n") == 0 and "--class-identity" in stderr, stderr
    code, _, stderr, out = _import(tmp_path, case, "--class-identity", "last-layer")
    assert code == 0, stderr
    model, _ = _same_logits(case, out)
    assert torch.equal(_identity(model), case["identity"])
    listing = tmp_path / "identity.txt"
    listing.write_text("".join(f"{int(row.argmax())}\n" for row in case["identity"]))
    code, _, stderr, out = _import(tmp_path, case, "--class-identity", str(listing), "--force")
    assert code == 0, stderr
    model, meta = _same_logits(case, out)
    assert torch.equal(_identity(model), case["identity"]) and meta["history"][0]["class_identity"] == "file"


@pytest.mark.parametrize("name", ["merged-whole", "merged-state-dict", "merged-legacy"])
def test_protopshare_merged_models(name, tmp_path, tmp_path_factory):
    case = written("protopshare", tmp_path_factory)[name]
    assert case["shared"] >= 1
    code, _, stderr, out = _import(tmp_path, case)
    assert code == 0, stderr
    model, meta = _same_logits(case, out)
    assert torch.equal(_identity(model), case["identity"])
    assert meta["history"][0]["shared_prototypes"] == case["shared"]


def test_protopshare_optimizer_file_is_one_clear_line(tmp_path, tmp_path_factory):
    case = dict(written("protopshare", tmp_path_factory)["merged-whole"])
    case["file"] = case["optims"]
    code, _, stderr, out = _import(tmp_path, case, fresh_process=True)
    assert code == 1 and not out.exists()
    line = stderr.strip()
    assert line.count("\n") == 0 and "optimizer" in line and "torch.optim.adam.Adam)" in line, stderr
    assert ".was" not in line and "weights_only" not in line


@pytest.mark.parametrize("name", ["protopool-vgg11", "protopool-vgg19_bn"])
def test_protopool_vgg_backbones(name, tmp_path, tmp_path_factory):
    case = written("protopool", tmp_path_factory)[name]
    code, stdout, stderr, out = _import(tmp_path, case)
    assert code == 0, stderr
    assert "not binarised" not in stdout
    _same_logits(case, out)
