"""Shared test settings: determinism, a bounded number of threads, and artifact folders."""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# CI machines have two cores; more threads than that only adds contention.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    torch = sys.modules.get("torch")  # seed torch only where a test already uses it
    if torch is not None:
        torch.manual_seed(0)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at (screenshots, reports)."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def demo_atlas_paths(tmp_path_factory) -> dict:
    """The two demo atlases with their `predictions` section, built once for the whole run
    (tests/stimuli_helpers.py; read-only for the tests that use them)."""
    from stimuli_helpers import build_demo_atlases

    return build_demo_atlases(tmp_path_factory.mktemp("demo-atlases"))
