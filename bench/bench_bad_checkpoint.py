"""Benchmark: memory `python -m core evaluate` takes before it refuses a bad checkpoint.

A ResNet-152 ProtoPNet checkpoint (random weights, 200 classes, 2000 prototypes; about
240 MB) is written once, then two bad variants: one weight of the wrong shape, and the
good file with a data folder that does not exist. Each command runs in its own process;
printed: its peak resident memory (ru_maxrss), seconds, exit code and the error line,
beside that of a process that only imports torch and the toolkit (the floor).

    python bench/bench_bad_checkpoint.py [--code PATH]   # PATH: another checkout to compare
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
       "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
       "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, round(time.perf_counter() - t, 1), "
       "p.returncode, (p.stderr.strip().splitlines() or [''])[-1][:160])")


def measure(code: Path, argv: list[str], cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", RUN, sys.executable, *argv], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True).stdout.split(" ", 3)
    return f"peak {int(out[0]) / 1024:7.0f} MB  {out[1]:>5} s  exit {out[2]}  {out[3].strip()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="the toolkit checkout to run (default: this one)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from core.architectures import build_model
    from core.training.checkpoint import read_checkpoint, save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cfg = {"architecture": "protopnet", "backbone": "resnet152", "weights": "none", "num_classes": 200,
               "prototypes_per_class": 10, "num_prototypes": None, "prototype_depth": 128, "add_on_layers": 2}
        model = build_model(cfg)
        config = {"model": model.config.to_dict(), "data": {"dataset": "cub", "root": str(tmp_path / "cub")}}
        good = save_checkpoint(tmp_path / "good.pt", model, config=config,
                               class_names=[f"c{i}" for i in range(200)])
        del model
        payload = read_checkpoint(good)
        for key, default in (("add_on_type", "regular"), ("distance_kernel", "matmul")):   # unknown to older code
            if payload["config"]["model"].get(key) == default:
                del payload["config"]["model"][key]
        torch.save(payload, good)
        payload["state_dict"]["last_layer.weight"] = torch.zeros(200, 7)
        torch.save(payload, tmp_path / "bad-shape.pt")
        del payload
        size = good.stat().st_size / 2 ** 20
        load = os.getloadavg()
        print(f"code: {args.code}; checkpoint {size:.0f} MB; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        floor = ["-c", "import torch, torchvision, core.cli, core.training.checkpoint, core.training.data, core.data, "
                 "core.training.evaluate"]
        print(f"{'imports only':<26}", measure(args.code, floor, tmp_path))
        print(f"{'weight of wrong shape':<26}",
              measure(args.code, ["-m", "core", "evaluate", "--checkpoint", str(tmp_path / "bad-shape.pt")], tmp_path))
        print(f"{'data folder missing':<26}",
              measure(args.code, ["-m", "core", "evaluate", "--checkpoint", str(good), "--data",
                                  str(tmp_path / "nowhere")], tmp_path))


if __name__ == "__main__":
    main()
