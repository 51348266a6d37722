"""Write PIP-Net checkpoints with the authors' own code (a local M-Nauta/PIPNet checkout).

    python tests/pipnet_official_writer.py CHECKOUT OUT_DIR

Run in its own process by tests/test_pipnet_official.py, so their module names
(`pipnet`, `features`, `util`) never meet this project's. Nothing of their code is copied:
the network is built by their `get_network` and `PIPNet`, initialised as their main.py
does, wrapped in nn.DataParallel, its optimiser made by their `get_optimizer_nn`, and saved
as main.py saves it. Their ConvNeXt constructor asks torchvision for ImageNet weights even
with pretrained=False (a download): torchvision's constructor is wrapped so that it builds
without weights. OUT_DIR/manifest.pt lists each case: file, net, input, and the outputs of
their forward (logits, pooled presence, prototype maps; also with inference=True).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn


def main(repo: str, out: Path) -> None:
    sys.path.insert(0, repo)
    import torchvision

    import features.convnext_features as convnext_features
    real = torchvision.models.convnext_tiny

    def no_download(pretrained=False, weights=None, **kw):   # their call passes weights=DEFAULT
        return real(weights=None, **kw)

    convnext_features.models.convnext_tiny = no_download
    from pipnet.pipnet import PIPNet, get_network
    from util.args import get_optimizer_nn
    from util.func import init_weights_xavier

    cases = []
    specs = [  # name, net, num_features, bias, image size, saved from the DataParallel wrapper
        ("resnet18-default", "resnet18", 0, False, 96, True),
        ("resnet18-addon-bias-bare", "resnet18", 24, True, 64, False),
        ("resnet50", "resnet50", 0, False, 64, True),
        ("convnext26", "convnext_tiny_26", 0, False, 224, True),
        ("convnext13-addon", "convnext_tiny_13", 40, False, 128, True),
    ]
    for i, (name, net_name, nf, bias, size, wrapped) in enumerate(specs):
        args = argparse.Namespace(net=net_name, disable_pretrained=True, num_features=nf, bias=bias, seed=1,
                                  lr=0.05, lr_block=5e-4, lr_net=5e-4, weight_decay=0.0, optimizer="Adam")
        torch.manual_seed(i)
        feats, add_on, pool, cls, m = get_network(7, args)
        net = PIPNet(num_classes=7, num_prototypes=m, feature_net=feats, args=args, add_on_layers=add_on,
                     pool_layer=pool, classification_layer=cls)
        net = nn.DataParallel(net)
        opt_net, _, _, _, _ = get_optimizer_nn(net, args)
        g = torch.Generator().manual_seed(100 + i)
        with torch.no_grad():   # main.py's initialisation, then a trained look
            net.module._add_on.apply(init_weights_xavier)
            nn.init.normal_(net.module._classification.weight, mean=1.0, std=0.1)
            nn.init.constant_(net.module._multiplier, val=2.)
            w = net.module._classification.weight
            w.copy_(torch.randn(w.shape, generator=g) * 2.0)          # negatives: used through relu
            if bias:
                net.module._classification.bias.copy_(torch.rand(7, generator=g))
            for mod in net.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.copy_(torch.empty_like(mod.running_mean).uniform_(-0.2, 0.2, generator=g))
                    mod.running_var.copy_(torch.empty_like(mod.running_var).uniform_(0.5, 1.5, generator=g))
            for mod in net.module._add_on.modules():
                if isinstance(mod, nn.Conv2d):
                    mod.weight.mul_(8.0)                               # peakier softmax, as after training
        net.eval()
        path = out / f"{name}_net_trained"
        state = net.state_dict() if wrapped else net.module.state_dict()
        torch.save({"model_state_dict": state, "optimizer_net_state_dict": opt_net.state_dict()}, path)
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            maps, pooled, logits = net(x)
            _, pooled_inf, logits_inf = net(x, inference=True)
        cases.append({"name": name, "file": str(path), "net": net_name, "x": x, "logits": logits.clone(),
                      "pooled": pooled.clone(), "maps": maps.clone(), "logits_inference": logits_inf.clone(),
                      "pooled_inference": pooled_inf.clone(), "prefixed": wrapped})
    torch.save(cases, out / "manifest.pt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
