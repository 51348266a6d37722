"""Write checkpoints with the authors' own code (a local checkout) and their logits.

    python tests/official_writers.py protopnet|protopshare|protopool CHECKOUT OUT_DIR

Run in its own process by tests/test_imports_official_code.py, so the authors' module
names (`model`, `save`, `settings`, ...) never meet this project's. Nothing of their code
is copied here: their classes are built by their constructors (`construct_PPNet`,
`PrototypeChooser`), edited by their functions (`prune_prototypes`, `join_prototypes`)
and saved as their scripts save them (`save.save_model_w_condition`, `torch.save` of the
whole model or of `{"model_state_dict", "epoch"}`). OUT_DIR/manifest.pt (plain tensors,
lists and dicts) lists each case: file, kind, the input and the logits of their forward.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn


def _trained_look(net: nn.Module, seed: int) -> nn.Module:
    """BatchNorm statistics and add-on biases away from their initial values (as after training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(torch.empty_like(mod.running_mean).uniform_(-0.2, 0.2, generator=g))
                mod.running_var.copy_(torch.empty_like(mod.running_var).uniform_(0.5, 1.5, generator=g))
                mod.weight.copy_(torch.empty_like(mod.weight).uniform_(0.5, 1.5, generator=g))
                mod.bias.copy_(torch.empty_like(mod.bias).uniform_(-0.2, 0.2, generator=g))
        for mod in net.add_on_layers.modules():
            if isinstance(mod, nn.Conv2d):
                mod.bias.copy_(torch.empty_like(mod.bias).uniform_(-0.1, 0.1, generator=g))
    return net.eval()


def _logits(net: nn.Module, size: int, n: int = 2, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, net(x)[0].clone()


def _case(cases: list, name: str, path: Path, kind: str, net: nn.Module, size: int, **extra) -> None:
    x, logits = _logits(net, size)
    cases.append({"name": name, "file": str(path), "kind": kind, "x": x, "logits": logits, "size": size, **extra})


def protopnet(repo_module, save, out: Path, cases: list, kind: str = "protopnet") -> None:
    torch.manual_seed(0)
    # ProtoPNet's default: VGG-19 (settings.py), 224 px, 2000 prototypes of depth 128 for 200 classes
    # (settings.py), construct_PPNet's default add-on 'bottleneck' (512 -> 256 -> 128)
    net = _trained_look(repo_module.construct_PPNet("vgg19", pretrained=False, img_size=224,
                                                    prototype_shape=(2000, 128, 1, 1), num_classes=200), 1)
    save.save_model_w_condition(model=net, model_dir=str(out), model_name="10push", accu=0.8, target_accu=0.7,
                                log=lambda *_: None)
    _case(cases, "default-vgg19-bottleneck", out / "10push0.8000.pth", kind, net, 224,
          add_on=[m.out_channels for m in net.add_on_layers if isinstance(m, nn.Conv2d)])
    # every VGG, with and without batch norm, both add-ons, at 64 px
    for i, arch in enumerate(("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")):
        add_on = "bottleneck" if i % 2 == 0 else "regular"
        net = _trained_look(repo_module.construct_PPNet(arch, pretrained=False, img_size=64,
                                                        prototype_shape=(10, 64, 1, 1), num_classes=5,
                                                        add_on_layers_type=add_on), 10 + i)
        save.save_model_w_condition(model=net, model_dir=str(out), model_name=f"{arch}-", accu=0.75, target_accu=0.7,
                                    log=lambda *_: None)
        _case(cases, f"{arch}-{add_on}", out / f"{arch}-0.7500.pth", kind, net, 64, backbone=arch)
    # a whole model pickled in the legacy format of PyTorch < 1.6 (2019-era ProtoPNet files)
    net = _trained_look(repo_module.construct_PPNet("resnet18", pretrained=False, img_size=64,
                                                    prototype_shape=(10, 32, 1, 1), num_classes=5), 30)
    torch.save(net, out / "legacy.pth", _use_new_zipfile_serialization=False)
    _case(cases, "legacy-resnet18", out / "legacy.pth", kind, net, 64)
    net = _trained_look(repo_module.construct_PPNet("vgg11_bn", pretrained=False, img_size=64,
                                                    prototype_shape=(10, 32, 1, 1), num_classes=5), 31)
    torch.save(net, out / "legacy-vgg.pth", _use_new_zipfile_serialization=False)
    _case(cases, "legacy-vgg11_bn", out / "legacy-vgg.pth", kind, net, 64)
    # pruned with their prune_prototypes, saved as a bare state dict
    net = _trained_look(repo_module.construct_PPNet("vgg11", pretrained=False, img_size=64,
                                                    prototype_shape=(20, 32, 1, 1), num_classes=5), 32)
    net.prune_prototypes([1, 2, 7])             # 17 prototypes for 5 classes: not ProtoPNet's order any more
    torch.save(net.state_dict(), out / "pruned-17.pth")
    _case(cases, "pruned-17-state-dict", out / "pruned-17.pth", kind, net, 64,
          identity=net.prototype_class_identity.clone())
    net = _trained_look(repo_module.construct_PPNet("vgg11", pretrained=False, img_size=64,
                                                    prototype_shape=(20, 32, 1, 1), num_classes=5), 33)
    net.prune_prototypes([0, 1, 2, 3, 9])       # 15 for 5 classes: divisible, yet j // 3 is wrong
    torch.save(net.state_dict(), out / "pruned-15.pth")
    _case(cases, "pruned-15-state-dict", out / "pruned-15.pth", kind, net, 64,
          identity=net.prototype_class_identity.clone())


def protopshare(repo_module, save, out: Path, cases: list) -> None:
    import proto_join

    torch.manual_seed(0)
    net = _trained_look(repo_module.construct_PPNet("vgg16", pretrained=False, img_size=64,
                                                    prototype_shape=(20, 32, 1, 1), num_classes=5), 40)
    multi = nn.DataParallel(net)
    # the optimizers of their main.py (join_prototypes edits them too)
    joint = torch.optim.Adam([{"params": net.features.parameters(), "lr": 1e-4},
                              {"params": net.add_on_layers.parameters(), "lr": 3e-3},
                              {"params": net.prototype_vectors, "lr": 3e-3}])
    warm = torch.optim.Adam([{"params": net.add_on_layers.parameters(), "lr": 3e-3},
                             {"params": net.prototype_vectors, "lr": 3e-3}])
    last = torch.optim.Adam([{"params": net.last_layer.parameters(), "lr": 1e-4}])
    with torch.no_grad():   # bring a few prototypes of different classes close, so the join merges them
        net.prototype_vectors[4] = net.prototype_vectors[0] + 1e-3
        net.prototype_vectors[9] = net.prototype_vectors[5] + 1e-3
    proto_join.join_prototypes(multi, 0.1, joint, warm, last)
    net.eval()
    save.save_model_w_condition(model=net, model_dir=str(out), model_name="20_push", accu=0.8, target_accu=0.7,
                                log=lambda *_: None, joint_optimizer=joint, warm_optimizer=warm,
                                last_layer_optimizer=last)
    shared = int((net.prototype_class_identity.sum(dim=1) > 1).sum())
    _case(cases, "merged-whole", out / "20_push0.8000.pth", "protopshare", net, 64,
          identity=net.prototype_class_identity.clone(), shared=shared,
          optims=str(out / "20_push0.8000_optims.pth"))
    torch.save(net.state_dict(), out / "merged-state-dict.pth")
    _case(cases, "merged-state-dict", out / "merged-state-dict.pth", "protopshare", net, 64,
          identity=net.prototype_class_identity.clone(), shared=shared)
    torch.save(net, out / "merged-legacy.pth", _use_new_zipfile_serialization=False)
    _case(cases, "merged-legacy", out / "merged-legacy.pth", "protopshare", net, 64,
          identity=net.prototype_class_identity.clone(), shared=shared)


def protopool(repo_module, out: Path, cases: list) -> None:
    for i, arch in enumerate(("vgg11", "vgg19_bn")):
        torch.manual_seed(i)
        net = repo_module.PrototypeChooser(num_prototypes=6, num_descriptive=2, num_classes=3, arch=arch,
                                           pretrained=False, proto_depth=32, use_last_layer=bool(i))
        with torch.no_grad():   # a trained, binarised assignment
            net.proto_presence.mul_(0.1)
            for c, picks in enumerate(([0, 1], [2, 0], [3, 4])):
                for n, p in enumerate(picks):
                    net.proto_presence[c, p, n] += 40.0
        net = _trained_look(net, 50 + i)
        path = out / f"protopool-{arch}.pth"
        torch.save({"model_state_dict": net.state_dict(), "epoch": 3}, path)    # their main.save_model
        _case(cases, f"protopool-{arch}", path, "protopool", net, 64)


def main(argv: list[str]) -> int:
    which, repo, out = argv[0], Path(argv[1]).resolve(), Path(argv[2]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(repo))
    import model as repo_module   # their model.py

    cases: list = []
    if which == "protopool":
        protopool(repo_module, out, cases)
    else:
        import save   # their save.py

        if which == "protopnet":
            protopnet(repo_module, save, out, cases)
        else:
            protopshare(repo_module, save, out, cases)
    torch.save(cases, out / "manifest.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
