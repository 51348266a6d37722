"""Benchmark: which loss terms drive the slot logits, per cluster/separation form (issue 25).

At the start of warm-up (tau = 1, Gumbel sample), on the shipped focal demo model
(checkpoints/demo-protopool-focal.pt: its trained backbone, add-on and prototypes) with
the slot logits re-drawn Xavier-normal (as a run starts), the norm of the gradient that
each weighted term sends into the slot logits q, averaged over `--batches` training
batches of the demo birds (train mode, fresh Gumbel noise per batch):
0.8 cluster and -0.08 separation in both forms (`loss.cluster_separation`: "topk", the
authors' detached form; "differentiable", cluster through y), 1.0 L_orth in both forms
(`loss.orthogonality_on`: "assignment", on the y of the pass, the default; "logits", the
authors' cosine of the raw logits), cross-entropy. Cross-entropy sends every slot of a class
the same gradient (its slots share the last-layer weight 1), so only the other terms can
keep them apart. (L_orth on the logits was added after the first run of this bench; L_orth
on the noise-free softmax(q), `probabilities`, and `--tau` after the second, issue 25.)
With `--tau` (e.g. 0.0045, the tiny config's joint epoch 1) the same at a small temperature:
the Gumbel sample is then one-hot and sends (almost) nothing, softmax(q) does not depend on tau.
Coherence (added with them): how much of a term's per-batch gradient survives averaging over
the batches, i.e. pushes the same way every step (Adam follows the average direction).

EXPECTED (written before the run): the topk form sends exactly 0 (its masks come from the
detached assignment); the differentiable cluster a gradient several times that of L_orth
(the issue measured 0.18 vs 0.043 once), so in that form an undocumented term, not
L_orth, dominates how a class's slots move while tau is near 1.

    python bench/bench_slot_gradients.py [--batches 8] [--seed 0] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def main(argv=None) -> int:
    from core.data import load_dataset
    from core.demo import ensure_data
    from core.model.losses import LossWeights, compute_losses
    from core.model.prototype_pool import xavier_normal_std
    from core.training.checkpoint import load_checkpoint
    from core.training.demo import committed_demo_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=None)
    ap.add_argument("--tau", type=float, default=1.0, help="temperature of the pass (default 1: warm-up)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, meta = load_checkpoint(committed_demo_model("focal"))
    d = meta["config"]["data"]
    with tempfile.TemporaryDirectory(prefix="bench-slotgrad-") as tmp:
        root = Path(a.data) if a.data else ensure_data(Path(tmp))
        train = load_dataset("cub", root, split="train", image_size=d["image_size"], crop_to_bbox=d["crop_to_bbox"],
                             val_fraction=d["val_fraction"], seed=d["split_seed"])
        torch.manual_seed(a.seed)
        c, k, m = model.slots.logits.shape
        with torch.no_grad():
            model.slots.logits.normal_(0.0, xavier_normal_std(c, k, m))
        model.set_tau(a.tau)
        model.set_trainable(["slots"])
        model.train()
        loader = torch.utils.data.DataLoader(train, batch_size=d["batch_size"], shuffle=True,
                                             generator=torch.Generator().manual_seed(a.seed))
        norms: dict[str, list[float]] = {}
        grads: dict[str, list[torch.Tensor]] = {}
        terms = {"cross_entropy": 1.0, "cluster": 0.8, "separation": -0.08, "orthogonality": 1.0}
        for b, (images, labels, _) in enumerate(loader):
            if b >= a.batches:
                break
            for form in ("topk", "differentiable"):
                state = torch.get_rng_state()
                for name, weight in terms.items():
                    if form == "topk" and name == "cross_entropy":
                        continue        # the same in both forms: measured once
                    torch.set_rng_state(state)         # the same Gumbel sample for every term
                    out = model(images)
                    only = LossWeights(**{t: (weight if t == name else 0.0) for t in terms}, l1=0.0,
                                       cluster_separation=form,
                                       orthogonality_on="logits" if (name, form) == ("orthogonality", "topk")
                                       else "assignment")
                    total, _ = compute_losses(model, out, labels, only)
                    model.slots.logits.grad = None
                    if total.requires_grad:
                        total.backward()
                    grad = model.slots.logits.grad
                    key = name if name == "cross_entropy" else f"{weight:g} {name} ({form})"
                    if name == "orthogonality":       # its two forms ride on the form loop
                        key = "1 L_orth (" + ("logits, the authors'" if form == "topk" else "y, the Gumbel sample") + ")"
                    norms.setdefault(key, []).append(0.0 if grad is None else float(grad.norm()))
                    grads.setdefault(key, []).append(torch.zeros_like(model.slots.logits) if grad is None
                                                     else grad.detach().clone())
                    if (name, form) == ("orthogonality", "differentiable"):   # the noise-free form
                        torch.set_rng_state(state)
                        out = model(images)
                        only = LossWeights(cross_entropy=0.0, cluster=0.0, separation=0.0, orthogonality=1.0, l1=0.0,
                                           orthogonality_on="probabilities")
                        total, _ = compute_losses(model, out, labels, only)
                        model.slots.logits.grad = None
                        total.backward()
                        norms.setdefault("1 L_orth (softmax(q), probabilities)", []).append(
                            float(model.slots.logits.grad.norm()))
                        grads.setdefault("1 L_orth (softmax(q), probabilities)", []).append(
                            model.slots.logits.grad.detach().clone())
    print(f"# slot-logit gradient norm per weighted term, tau = {a.tau:g}, Xavier-normal slot logits, shipped focal demo "
          f"model, {a.batches} batches of {d['batch_size']}; load average {os.getloadavg()[0]:.1f}")
    print("# coherence = norm of the mean gradient over the batches / mean norm (1: every batch pushes the same "
          "way; about 1/sqrt(batches) for noise)")
    for key, values in norms.items():
        mean_norm = statistics.mean(values)
        coherence = float(torch.stack(grads[key]).mean(dim=0).norm()) / mean_norm if mean_norm > 0 else float("nan")
        print(f"{key:36s} {mean_norm:.4f} (min {min(values):.4f}, max {max(values):.4f}), coherence {coherence:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
