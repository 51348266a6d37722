"""Overlay throughput on one core at 224x224 (target: >= 300 overlays per second).

Each overlay is the full SPEC §3 pipeline: bicubic upsampling of a 7x7 map, min-max,
JET (BGR->RGB), blend with the image, and the 95th-percentile box.
Run: .venv/bin/python bench/bench_overlay.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.explain import overlay as ov  # noqa: E402


def main(n: int = 2000) -> None:
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 224, 224, 3), dtype=np.uint8)
    maps = rng.random((16, 7, 7)).astype(np.float32)
    for i in range(50):  # warm-up
        ov.overlay(images[i % 16], maps[i % 16])
    start = time.perf_counter()
    for i in range(n):
        up = ov.upsample(maps[i % 16], (224, 224))
        ov.blend(images[i % 16], ov.jet_rgb(ov.normalise(up)))
        ov.high_activation_box(up)
    elapsed = time.perf_counter() - start
    rate = n / elapsed
    print(f"overlays+boxes at 224x224 on 1 core: {rate:.0f} per second "
          f"({1000 * elapsed / n:.2f} ms each; target >= 300/s: {'OK' if rate >= 300 else 'MISSED'})")


if __name__ == "__main__":
    main()
