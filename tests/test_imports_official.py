"""Importing checkpoints of the official ProtoPool / ProtoPNet / ProtoPShare code.

The official repositories cannot be committed or downloaded here, so the tests define
small classes under the official module and class names (`model.PPNet`,
`model.PrototypeChooser`, `resnet_features.ResNet_features`, `resnet_features.BasicBlock`)
with the official attribute names and forward equations (read from gmum/ProtoPool,
cfchen-duke/ProtoPNet and gmum/ProtoPShare `model.py`), save them the way the official
scripts do (`torch.save(model)`; ProtoPool: `{"model_state_dict", "epoch"}`), import them
with `python -m core import-checkpoint` in a fresh process that has no such classes, and
compare our model's logits with the official forward on the same input.
tests/test_imports_official_code.py does the same with files written by the authors' own
code, from a local checkout (skipped without one).
"""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from core.errors import CheckpointError
from core.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def _official_modules():
    """Modules `model`, `resnet_features`, `vgg_features` holding classes with the official names."""
    rf = types.ModuleType("resnet_features")
    mdl = types.ModuleType("model")
    vgg = types.ModuleType("vgg_features")

    class BasicBlock(torchvision.models.resnet.BasicBlock):
        pass

    class ResNet_features(nn.Module):
        def __init__(self):
            super().__init__()
            net = torchvision.models.resnet18(weights=None)
            self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
            for name in ("layer1", "layer2", "layer3", "layer4"):
                layer = getattr(net, name)
                for block in layer:
                    block.__class__ = BasicBlock
                setattr(self, name, layer)
            self.kernel_sizes, self.block = [7, 3], BasicBlock      # plain attributes, as theirs

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def l2_convolution(self, x):        # official _l2_convolution
        x2_patch_sum = F.conv2d(input=x ** 2, weight=self.ones)
        p2 = torch.sum(self.prototype_vectors ** 2, dim=(1, 2, 3)).view(-1, 1, 1)
        xp = F.conv2d(input=x, weight=self.prototype_vectors)
        return F.relu(x2_patch_sum - 2 * xp + p2)

    class DenseNet_features(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torchvision.models.densenet121(weights=None).features
            self.features.add_module("final_relu", nn.ReLU(inplace=True))

        def forward(self, x):
            return self.features(x)

    class PPNet(nn.Module):
        def __init__(self, num_classes=3, per_class=2, depth=16, features=None, channels=512):
            super().__init__()
            m = num_classes * per_class
            self.num_prototypes, self.num_classes, self.epsilon = m, num_classes, 1e-4
            self.prototype_activation_function = "log"
            self.prototype_class_identity = torch.zeros(m, num_classes)
            for j in range(m):
                self.prototype_class_identity[j, j // per_class] = 1
            self.features = features or ResNet_features()
            self.add_on_layers = nn.Sequential(nn.Conv2d(channels, depth, 1), nn.ReLU(), nn.Conv2d(depth, depth, 1),
                                               nn.Sigmoid())
            self.prototype_vectors = nn.Parameter(torch.rand(m, depth, 1, 1))
            self.ones = nn.Parameter(torch.ones(m, depth, 1, 1), requires_grad=False)
            self.last_layer = nn.Linear(m, num_classes, bias=False)
            self.binarizer = nn.Hardtanh(min_val=0.8, max_val=1.8)    # ProtoPShare's extra attributes
            self.thresholds = torch.zeros((1, m))

        _l2_convolution = l2_convolution

        def forward(self, x):
            distances = self._l2_convolution(self.add_on_layers(self.features(x)))
            min_distances = -F.max_pool2d(-distances, kernel_size=(distances.size()[2], distances.size()[3]))
            min_distances = min_distances.view(-1, self.num_prototypes)
            act = torch.log((min_distances + 1) / (min_distances + self.epsilon))
            return self.last_layer(act), min_distances

    class PrototypeChooser(nn.Module):
        def __init__(self, num_classes=3, num_prototypes=5, num_descriptive=2, depth=16, use_last_layer=False):
            super().__init__()
            self.num_classes, self.num_descriptive, self.num_prototypes, self.epsilon = (
                num_classes, num_descriptive, num_prototypes, 1e-4)
            self.proto_presence = nn.Parameter(torch.randn(num_classes, num_prototypes, num_descriptive))
            self.features = ResNet_features()
            self.add_on_layers = nn.Sequential(nn.Conv2d(512, depth, 1), nn.Sigmoid())
            self.prototype_vectors = nn.Parameter(torch.rand(num_prototypes, depth, 1, 1))
            self.ones = nn.Parameter(torch.ones(num_prototypes, depth, 1, 1), requires_grad=False)
            self.use_last_layer = use_last_layer
            self.last_layer = (nn.Linear(num_descriptive * num_classes, num_classes, bias=False)
                               if use_last_layer else nn.Identity())

        _l2_convolution = l2_convolution

        def forward(self, x, gumbel_scale=0):
            proto_presence = torch.softmax(self.proto_presence, dim=1)
            distances = self._l2_convolution(self.add_on_layers(self.features(x)))
            min_distances = -F.max_pool2d(-distances, kernel_size=(distances.size()[2], distances.size()[3])).flatten(1)
            avg_dist = F.avg_pool2d(distances, kernel_size=(distances.size()[2], distances.size()[3])).flatten(1)
            g = lambda d: torch.log((d + 1) / (d + self.epsilon))           # noqa: E731
            x = g(torch.einsum("bp,cpn->bcn", min_distances, proto_presence)) - \
                g(torch.einsum("bp,cpn->bcn", avg_dist, proto_presence))
            return (self.last_layer(x.flatten(start_dim=1)) if self.use_last_layer else x.sum(dim=-1)), min_distances

    class VGG_features(nn.Module):    # official vgg_features.VGG_features: torchvision's VGG layer list
        def __init__(self, batch_norm=False):
            super().__init__()
            make = torchvision.models.vgg11_bn if batch_norm else torchvision.models.vgg11
            self.features = make(weights=None).features
            self.kernel_sizes, self.batch_norm = [3, 2], batch_norm

        def forward(self, x):
            return self.features(x)

    mdl.DenseNet_features = DenseNet_features      # (a state dict only: not pickled by name)
    mdl.VGG_features = VGG_features
    for cls, module in ((BasicBlock, rf), (ResNet_features, rf), (PPNet, mdl), (PrototypeChooser, mdl),
                        (VGG_features, vgg)):
        cls.__module__, cls.__qualname__ = module.__name__, cls.__name__
        setattr(module, cls.__name__, cls)
    return mdl, rf, vgg


@pytest.fixture
def official(monkeypatch):
    mdl, rf, vgg = _official_modules()
    monkeypatch.setitem(sys.modules, "model", mdl)
    monkeypatch.setitem(sys.modules, "resnet_features", rf)
    monkeypatch.setitem(sys.modules, "vgg_features", vgg)
    return mdl


def _randomise(net: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, then evaluation mode (as a trained model)."""
    torch.manual_seed(1)
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _import(tmp_path, path, kind, *extra, fresh_process=False):
    """Run `python -m core import-checkpoint`: in a fresh process (no official classes
    anywhere), or in this one (faster; the importer never looks at them either)."""
    out = tmp_path / f"ours-{kind}.pt"
    argv = ["import-checkpoint", "--official", str(path), "--kind", kind, "--out", str(out), "--image-size", "64",
            *extra]
    if fresh_process:
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        return subprocess.run([sys.executable, "-m", "core", *argv], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300), out
    import contextlib
    import io

    from core.cli import main
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue()), out


def _compare(official_net, ours_path):
    model, meta = load_checkpoint(ours_path)
    torch.manual_seed(2)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = official_net(x)[0]
        got = model(x).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    return model, meta


def test_protopnet_whole_pickle_gives_the_same_logits(official, tmp_path):
    torch.manual_seed(0)
    net = _randomise(official.PPNet())
    with torch.no_grad():
        net.last_layer.weight.copy_(net.prototype_class_identity.t() - 0.5 * (1 - net.prototype_class_identity.t()))
    path = tmp_path / "ppnet.pth"
    torch.save(net, path)                       # as the official save.py does
    proc, out = _import(tmp_path, path, "protopnet", fresh_process=True)
    assert proc.returncode == 0, proc.stderr
    model, meta = _compare(net, out)
    assert model.prototype_classes() == [[0], [0], [1], [1], [2], [2]]
    assert meta["config"]["model"]["similarity"] == "protopnet"
    assert meta["config"]["model"]["add_on_layers"] == 2 and meta["config"]["model"]["backbone"] == "resnet18"
    assert meta["history"][0]["phase"] == "import" and meta["class_names"] == ["class_0", "class_1", "class_2"]


def test_protopshare_merged_prototype_serves_both_classes(official, tmp_path):
    torch.manual_seed(0)
    net = _randomise(official.PPNet())
    with torch.no_grad():   # a merge step: prototype 2 (class 1) removed, its weights added onto prototype 0
        w = net.prototype_class_identity.t().clone()
        w[:, 0] += w[:, 2]
        keep = [0, 1, 3, 4, 5]
        net.prototype_vectors = nn.Parameter(net.prototype_vectors.data[keep])
        net.ones = nn.Parameter(net.ones.data[keep], requires_grad=False)
        net.last_layer = nn.Linear(5, 3, bias=False)
        net.last_layer.weight.copy_(w[:, keep])
        net.prototype_class_identity = net.prototype_class_identity[keep]
        net.num_prototypes = 5
    path = tmp_path / "share.pth"
    torch.save(net, path)
    proc, out = _import(tmp_path, path, "protopshare")
    assert proc.returncode == 0, proc.stderr
    model, meta = _compare(net, out)
    assert model.prototype_classes()[0] == [0, 1] and model.prototype_classes()[1] == [0]
    assert meta["history"][0]["shared_prototypes"] == 1


@pytest.mark.parametrize("last_layer", [False, True])
def test_protopool_state_dict_gives_the_same_logits(official, tmp_path, last_layer):
    torch.manual_seed(0)
    net = _randomise(official.PrototypeChooser(use_last_layer=last_layer))
    with torch.no_grad():   # a trained, binarised assignment: one prototype per slot far ahead
        chosen = torch.tensor([[0, 1], [2, 0], [3, 4]])
        net.proto_presence.mul_(0.1)
        for c in range(3):
            for n in range(2):
                net.proto_presence[c, chosen[c, n], n] += 40.0
        if last_layer:
            net.last_layer.weight.uniform_(-0.2, 1.0)
    path = tmp_path / "protopool.pth"
    torch.save({"model_state_dict": net.state_dict(), "epoch": 7}, path)    # as ProtoPool's save_model
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    proc, out = _import(tmp_path, path, "protopool", "--class-names", str(names))
    assert proc.returncode == 0, proc.stderr
    assert "not binarised" not in proc.stdout
    model, meta = _compare(net, out)
    assert meta["class_names"] == ["a", "b", "c"]
    assert meta["config"]["model"]["similarity"] == "focal-code" and meta["config"]["model"]["num_slots"] == 2
    assert model.prototype_classes()[0] == [0, 1] and model.prototype_classes()[4] == [2]


def test_a_soft_protopool_assignment_is_reported(official, tmp_path):
    torch.manual_seed(0)
    net = official.PrototypeChooser()
    path = tmp_path / "soft.pth"
    torch.save({"model_state_dict": net.state_dict(), "epoch": 0}, path)
    proc, out = _import(tmp_path, path, "protopool")
    assert proc.returncode == 0, proc.stderr
    assert "not binarised" in proc.stdout
    assert load_checkpoint(out)[1]["history"][0]["assignment_gap"] > 0.1


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_without_running(official, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {"x": torch.zeros(1)}, "epoch": Exploit(marker)}, path)
    proc, out = _import(tmp_path, path, "protopnet", fresh_process=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and "system" in lines[0], proc.stderr
    assert not marker.exists() and not out.exists()
    # a pickled model that is not one of the official classes is refused too
    torch.save(nn.Sequential(nn.Linear(2, 2)), tmp_path / "other.pth")
    proc, _ = _import(tmp_path, tmp_path / "other.pth", "protopnet")
    assert proc.returncode == 1 and "not a ProtoPNet/ProtoPool model" in proc.stderr


def test_wrong_kind_and_unsupported_add_on_are_one_line_errors(official, tmp_path):
    torch.manual_seed(0)
    net = official.PPNet()
    path = tmp_path / "ppnet.pth"
    torch.save(net, path)
    proc, out = _import(tmp_path, path, "protopool")
    assert proc.returncode == 1 and "not --kind protopool" in proc.stderr and not out.exists()
    net.add_on_layers = nn.Sequential(nn.Conv2d(512, 32, 1), nn.ReLU(), nn.Conv2d(32, 16, 1), nn.Sigmoid())
    torch.save(net, path)
    proc, _ = _import(tmp_path, path, "protopnet")
    assert proc.returncode == 1 and "add-on widths [32, 16]" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_protopnet_densenet_state_dict_gives_the_same_logits(official, tmp_path):
    torch.manual_seed(0)
    net = _randomise(official.PPNet(features=official.DenseNet_features(), channels=1024))
    with torch.no_grad():
        net.last_layer.weight.copy_(net.prototype_class_identity.t())
    path = tmp_path / "ppnet-densenet.pth"
    torch.save(net.state_dict(), path)
    proc, out = _import(tmp_path, path, "protopnet")
    assert proc.returncode == 0, proc.stderr
    model, meta = _compare(net, out)
    assert meta["config"]["model"]["backbone"] == "densenet121"


class EvilModule(nn.Module):
    """A module class that is none of the official ones (its source is stored in a legacy file)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)


def test_a_malicious_legacy_pickle_is_refused_without_running(official, tmp_path):
    """PyTorch < 1.6 format: read by the restricted unpickler, which refuses every other global."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil-legacy.pth"
    torch.save({"model_state_dict": {"x": torch.zeros(1)}, "epoch": Exploit(marker)}, path,
               _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:2] != b"PK"
    proc, out = _import(tmp_path, path, "protopnet", fresh_process=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and "system" in lines[0], proc.stderr
    assert not marker.exists() and not out.exists()
    # a whole model of another module class (its source code rides along in the legacy format)
    torch.save(EvilModule(), tmp_path / "other-legacy.pth", _use_new_zipfile_serialization=False)
    proc, _ = _import(tmp_path, tmp_path / "other-legacy.pth", "protopnet")
    assert proc.returncode == 1 and "EvilModule" in proc.stderr and "refused" in proc.stderr
    # an exploit hidden inside a module's attributes
    net = official.PPNet()
    net.note = Exploit(marker)
    torch.save(net, tmp_path / "ppnet-evil-legacy.pth", _use_new_zipfile_serialization=False)
    proc, out = _import(tmp_path, tmp_path / "ppnet-evil-legacy.pth", "protopnet")
    assert proc.returncode == 1 and "system" in proc.stderr and not marker.exists() and not out.exists()


def test_legacy_pickle_of_pytorch_1_0_to_1_4_with_backend_attribute(official, tmp_path):
    """Modules pickled by PyTorch 1.0-1.4 carry `_backend`, pickled as a call of
    torch.nn.backends.thnn._get_thnn_function_backend: allowed, and it runs nothing."""
    import torch.nn.backends.thnn as thnn

    class Backend:
        def __reduce__(self):
            return (thnn._get_thnn_function_backend, ())

    torch.manual_seed(0)
    net = _randomise(official.PPNet())
    for mod in net.modules():
        mod._backend = Backend()
    path = tmp_path / "ppnet-2019.pth"
    torch.save(net, path, _use_new_zipfile_serialization=False)
    assert b"_get_thnn_function_backend" in path.read_bytes()
    for mod in net.modules():
        del mod._backend
    proc, out = _import(tmp_path, path, "protopnet")
    assert proc.returncode == 0, proc.stderr
    _compare(net, out)


@pytest.mark.parametrize("legacy", [False, True])
def test_toolkit_commands_point_an_official_pickle_to_import_checkpoint(official, tmp_path, legacy):
    """`core evaluate` (any reader of this toolkit's checkpoints) given the authors' file: one short
    line saying to convert it, without PyTorch's advice about weights_only."""
    net = official.PPNet()
    path = tmp_path / "30push0.7411.pth"
    torch.save(net, path, _use_new_zipfile_serialization=not legacy)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "core", "evaluate", "--checkpoint", str(path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    line = proc.stderr.strip()
    assert proc.returncode == 1 and line.count("\n") == 0, proc.stderr
    assert "model.PPNet" in line and "import-checkpoint --official" in line and "--kind protopnet" in line
    assert "nothing was run" in line
    assert "weights_only" not in line and "Weights only" not in line and len(line) < 600
    # ProtoPool's {"model_state_dict", "epoch"}: loads, but is not ours
    torch.save({"model_state_dict": official.PrototypeChooser().state_dict(), "epoch": 1}, tmp_path / "pool.pth")
    with pytest.raises(CheckpointError, match="import-checkpoint"):
        load_checkpoint(tmp_path / "pool.pth")


def test_optimizer_states_are_named(official, tmp_path):
    net = official.PPNet()
    opt = torch.optim.Adam(net.parameters())
    torch.save({"joint_optimizer": opt.state_dict()}, tmp_path / "optims-states.pth")
    proc, out = _import(tmp_path, tmp_path / "optims-states.pth", "protopnet")
    assert proc.returncode == 1 and "optimizer state dicts, not a model" in proc.stderr and not out.exists()
    torch.save({"joint_optimizer": opt}, tmp_path / "x_optims.pth")
    proc, _ = _import(tmp_path, tmp_path / "x_optims.pth", "protopnet")
    assert proc.returncode == 1 and "holds optimizer states (torch.optim.adam.Adam)" in proc.stderr
    assert ".was" not in proc.stderr


def _bottleneck(in_channels, depth):
    """ProtoPNet's 'bottleneck' add-on as construct_PPNet builds it (pairs halving the width to D)."""
    layers, current = [], in_channels
    while current > depth or not layers:
        out = max(depth, current // 2)
        layers += [nn.Conv2d(current, out, 1), nn.ReLU(), nn.Conv2d(out, out, 1),
                   nn.ReLU() if out > depth else nn.Sigmoid()]
        current //= 2
    return nn.Sequential(*layers)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_protopnet_vgg_with_bottleneck_add_on(official, tmp_path, batch_norm):
    torch.manual_seed(0)
    net = official.PPNet(features=official.VGG_features(batch_norm), depth=64)
    net.add_on_layers = _bottleneck(512, 64)           # 512 -> 256, 256 -> 128, 128 -> 64, 64
    net = _randomise(net)
    path = tmp_path / "ppnet-vgg.pth"
    torch.save(net, path)
    proc, out = _import(tmp_path, path, "protopnet")
    assert proc.returncode == 0, proc.stderr
    model, meta = _compare(net, out)
    cfg = meta["config"]["model"]
    assert cfg["backbone"] == ("vgg11_bn" if batch_norm else "vgg11") and cfg["add_on_type"] == "bottleneck"
    assert [m.out_channels for m in model.add_on if isinstance(m, nn.Conv2d)] == [256, 256, 128, 128, 64, 64]


def test_pruned_state_dict_class_identity_from_the_last_layer_or_the_flag(official, tmp_path):
    torch.manual_seed(0)
    net = _randomise(official.PPNet(per_class=3))           # 9 prototypes, 3 classes
    keep = [0, 2, 3, 4, 5, 6, 8]                            # pruned: 7, not a multiple of 3
    with torch.no_grad():
        net.prototype_vectors = nn.Parameter(net.prototype_vectors.data[keep])
        net.ones = nn.Parameter(net.ones.data[keep], requires_grad=False)
        ident = net.prototype_class_identity[keep]
        net.last_layer = nn.Linear(7, 3, bias=False)
        net.last_layer.weight.copy_(ident.t() - 0.5 * (1 - ident.t()))
        net.num_prototypes = 7
    path = tmp_path / "pruned.pth"
    torch.save(net.state_dict(), path)
    proc, out = _import(tmp_path, path, "protopnet")
    assert proc.returncode == 0, proc.stderr
    model, meta = _compare(net, out)
    assert torch.equal(model.class_prototype_mask().t().float(), ident)
    assert meta["history"][0]["class_identity"] == "last-layer"
    # the flag: a file with each prototype's class, or ProtoPNet's order where it applies
    listing = tmp_path / "classes.txt"
    listing.write_text("0\n0\n1\n1\n1, 2\n2\n2\n")
    proc, out = _import(tmp_path, path, "protopnet", "--class-identity", str(listing), "--force")
    assert proc.returncode == 0, proc.stderr
    model, meta = load_checkpoint(out)
    assert model.prototype_classes()[4] == [1, 2] and meta["history"][0]["class_identity"] == "file"
    np_file = tmp_path / "classes.npy"
    import numpy as np
    np.save(np_file, ident.numpy())
    proc, out = _import(tmp_path, path, "protopnet", "--class-identity", str(np_file), "--force")
    assert proc.returncode == 0 and torch.equal(load_checkpoint(out)[0].class_prototype_mask().t().float(), ident)
    proc, _ = _import(tmp_path, path, "protopnet", "--class-identity", "blocks", "--force")
    assert proc.returncode == 1 and "not a multiple" in proc.stderr
    listing.write_text("0\n0\n1\n")
    proc, _ = _import(tmp_path, path, "protopnet", "--class-identity", str(listing), "--force")
    assert proc.returncode == 1 and f"--class-identity {listing}: 3 prototypes listed, the model has 7" in proc.stderr
    listing.write_text("0\nzero\n")
    proc, _ = _import(tmp_path, path, "protopnet", "--class-identity", str(listing), "--force")
    assert proc.returncode == 1 and "line 2" in proc.stderr and proc.stderr.strip().count("\n") == 0
