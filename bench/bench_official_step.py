"""Benchmark: one ProtoPool training step, ours vs the authors' model code (gmum/ProtoPool).

CUB configuration: ResNet-50 (random weights: no download), 224x224, batch 16, M=202
prototypes, K=10 slots, D=256, 200 classes. Both sides do the same work per step:
forward with a Gumbel-softmax assignment, cross-entropy + 0.8 cluster - 0.08 separation
+ orthogonality + 1e-4 L1, backward, one Adam step over every trainable parameter.

The authors' code is NOT part of this repository (licence/policy): pass a local checkout
with `--official-repo PATH`; its `model.py` (class PrototypeChooser) is imported from
there. Its cluster/separation costs live in its `main.py` (`dist_loss`); when that file
cannot be imported (missing dependencies) the same top-k computation is done here,
written from the paper's description of the authors' variant. `densenet_features` /
`vgg_features`, imported by model.py but not needed for ResNet-50, are replaced by empty
modules when the checkout lacks them (said in the output).

Prints, for both sides: step seconds (fastest and median of the steps), the prototype-head share of the step (head =
everything after the backbone: add-on, distances, activations, slot mixing, last layer,
losses, backward through them; timed on a fixed backbone feature map) and the ratio
ours/official. Steps alternate between the two sides so both see the same load.

    python bench/bench_official_step.py --official-repo ~/src/ProtoPool [--steps 5] [--device cuda]
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.architectures import build_model  # noqa: E402
from core.model.losses import LossWeights, compute_losses  # noqa: E402

C, M, K, D = 200, 202, 10, 256


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def load_official(repo: Path):
    """(PrototypeChooser class, dist_loss or None, notes) from a local checkout."""
    if not (repo / "model.py").is_file():
        raise SystemExit(f"--official-repo: {repo} has no model.py (expected a gmum/ProtoPool checkout)")
    notes = []
    sys.path.insert(0, str(repo))
    for name in ("densenet_features", "vgg_features"):
        try:
            importlib.import_module(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.__getattr__ = lambda attr: (lambda *a, **k: None)   # names only, never called for ResNet-50
            sys.modules[name] = stub
            notes.append(f"{name} missing in the checkout: stubbed (not used by ResNet-50)")
    model_mod = importlib.import_module("model")
    dist_loss = None
    try:
        dist_loss = importlib.import_module("main").dist_loss
    except Exception as exc:  # noqa: BLE001 - main.py pulls tensorboard, matplotlib, cv2
        notes.append(f"main.dist_loss not importable ({type(exc).__name__}): top-k cluster/separation done here")
    return model_mod.PrototypeChooser, dist_loss, notes


def topk_distance_cost(min_distances, presence, top_k, max_dist):
    """The authors' variant (SPEC 1): per image, the smallest distance among the top-k
    prototypes of the detached per-class assignment; presence (B, M, K)."""
    basic = presence.sum(dim=-1).detach()
    idx = torch.topk(basic, top_k, dim=1).indices
    mask = torch.zeros_like(basic).scatter_(1, idx, 1.0)
    return torch.mean(max_dist - torch.max((max_dist - min_distances) * mask, dim=1).values)


class OfficialStep:
    def __init__(self, chooser, dist_loss, device, gumbel_scale: float):
        torch.manual_seed(0)
        self.net = chooser(num_prototypes=M, num_descriptive=K, num_classes=C, arch="resnet50", pretrained=False,
                           add_on_layers_type="log", proto_depth=D, use_last_layer=True).to(device)
        self.identity = self.net.prototype_class_identity.to(device)
        self.dist_loss = dist_loss
        self.scale = gumbel_scale
        self.opt = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=1e-4)

    def _losses(self, logits, min_distances, presence, labels):
        ce = F.cross_entropy(logits, labels)
        q = self.net.proto_presence
        orth = F.cosine_similarity(q.unsqueeze(2), q.unsqueeze(-1), dim=1).sum() / (K * C) - 1
        pp = presence[labels]
        if self.dist_loss is not None:
            clst = self.dist_loss(self.net, min_distances, pp, K)
            sep = self.dist_loss(self.net, min_distances, 1 - pp, M - K)
        else:
            clst = topk_distance_cost(min_distances, pp, K, D)
            sep = topk_distance_cost(min_distances, 1 - pp, M - K, D)
        l1 = (self.net.last_layer.weight * (1 - self.identity.t())).norm(p=1)
        return ce + 0.8 * clst - 0.08 * sep + 1e-4 * l1 + orth

    def step(self, images, labels):
        self.opt.zero_grad(set_to_none=True)
        logits, min_d, presence = self.net(images, gumbel_scale=self.scale)
        self._losses(logits, min_d, presence, labels).backward()
        self.opt.step()

    def head_step(self, feats, labels):
        """Everything after the backbone, on a fixed feature map."""
        self.opt.zero_grad(set_to_none=True)
        net = self.net
        presence = torch.nn.functional.gumbel_softmax(net.proto_presence * self.scale, dim=1, tau=0.5)
        dist = net._l2_convolution(net.add_on_layers(feats))
        min_d = -F.max_pool2d(-dist, kernel_size=dist.shape[2:]).squeeze()
        avg_d = F.avg_pool2d(dist, kernel_size=dist.shape[2:]).squeeze()
        x = net.distance_2_similarity(net._mix_l2_convolution(min_d, presence)) - \
            net.distance_2_similarity(net._mix_l2_convolution(avg_d, presence))
        logits = net.last_layer(x.flatten(start_dim=1))
        self._losses(logits, min_d, presence, labels).backward()
        self.opt.step()

    def features(self, images):
        with torch.no_grad():
            return self.net.features(images)


class OursStep:
    def __init__(self, device, tau: float, similarity: str):
        torch.manual_seed(0)
        self.net = build_model(dict(architecture="protopool", backbone="resnet50", weights="none", num_classes=C,
                                    num_prototypes=M, num_slots=K, prototype_depth=D, add_on_layers=1,
                                    similarity=similarity)).to(device)
        self.net.set_tau(tau)
        self.net.train()
        self.weights = LossWeights()
        self.opt = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=1e-4)

    def step(self, images, labels):
        self.opt.zero_grad(set_to_none=True)
        total, _ = compute_losses(self.net, self.net(images), labels, self.weights)
        total.backward()
        self.opt.step()

    def head_step(self, feats, labels):
        from core.model.base import ModelOutput

        self.opt.zero_grad(set_to_none=True)
        net = self.net
        _, min_d, sim = net.prototype_layer(net.add_on(feats))
        logits, y = net.class_scores(sim)
        out = ModelOutput(logits=logits, min_distances=min_d, similarities=sim, assignment=y)
        total, _ = compute_losses(net, out, labels, self.weights)
        total.backward()
        self.opt.step()

    def features(self, images):
        with torch.no_grad():
            return self.net.backbone(images)


def timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official-repo", required=True, type=Path, help="local checkout of gmum/ProtoPool")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=3, help="measured steps per side (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    ap.add_argument("--similarity", default="focal", help="ours: focal (paper) or focal-code (authors' form)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    chooser, dist_loss, notes = load_official(a.official_repo.expanduser().resolve())
    # joint epoch 1 of each schedule: official scale 1.3 * sqrt(alpha * 1), ours tau(1)
    official_scale = 1.3 * ((1e3 / 1.3) ** 2 / 10) ** 0.5
    from core.model.prototype_pool import tau_schedule

    sides = {"ours": OursStep(device, tau_schedule(1), a.similarity),
             "official": OfficialStep(chooser, dist_loss, device, official_scale)}
    g = torch.Generator().manual_seed(0)
    images = torch.randn(a.batch, 3, a.size, a.size, generator=g).to(device)
    labels = torch.randint(0, C, (a.batch,), generator=g).to(device)
    feats = {k: s.features(images) for k, s in sides.items()}
    times = {k: {"step": [], "head": []} for k in sides}
    for name, side in sides.items():   # warm-up (allocations, kernels)
        side.step(images, labels)
        side.head_step(feats[name], labels)
    for _ in range(a.steps):
        for name, side in sides.items():
            times[name]["step"].append(timed(lambda s=side: s.step(images, labels), device))
            times[name]["head"].append(timed(lambda s=side, f=feats[name]: s.head_step(f, labels), device))
    print(f"# one training step, CUB configuration: ResNet-50, {a.size}x{a.size}, batch {a.batch}, "
          f"M={M}, K={K}, D={D}, C={C}; device {device}, threads {torch.get_num_threads()}, {a.steps} steps per side")
    for n in notes:
        print(f"# note: {n}")
    # the fastest of the interleaved steps is the least disturbed by other load (shared
    # machines); the median is printed beside it
    for stat, fn in (("fastest", min), ("median", statistics.median)):
        v = {k: {kind: fn(x) for kind, x in t.items()} for k, t in times.items()}
        for name in sides:
            s, h = v[name]["step"], v[name]["head"]
            print(f"{stat:8s} {name:9s} step {s:8.4f} s   prototype head {h:8.4f} s   head share {h / s:6.1%}")
        print(f"{stat:8s} ratio ours/official: step {v['ours']['step'] / v['official']['step']:.3f}   "
              f"head {v['ours']['head'] / v['official']['head']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
