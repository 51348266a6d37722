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

# CI machines have two cores; more threads than that only adds contention. Under
# pytest-xdist (pytest.ini: two worker processes) each worker gets one thread.
_THREADS = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"
os.environ.setdefault("OMP_NUM_THREADS", _THREADS)
os.environ.setdefault("MKL_NUM_THREADS", _THREADS)


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


def shared_path(tmp_path_factory, name: str) -> Path:
    """A folder under the run's temporary root that every worker of the run sees (under
    pytest-xdist each worker has its own base temp, one level below the run's)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name


@pytest.fixture(scope="session")
def demo_birds(tmp_path_factory) -> Path:
    """The demo's synthetic birds (core.training.demo.DEMO_BIRDS: 10 classes x 100 images
    at 448 px), drawn once per run and shared by the workers; read-only for the tests (a
    test that changes files copies the folder first)."""
    from filelock import FileLock

    from core.data.synthetic import make_synthetic
    from core.training.demo import DEMO_BIRDS

    root = shared_path(tmp_path_factory, "demo-birds")
    with FileLock(str(root) + ".lock"):
        done = root / ".complete"
        if not done.is_file():
            make_synthetic(root, **DEMO_BIRDS, overwrite=True)
            done.touch()
    return root


@pytest.fixture(scope="session")
def demo_atlas_paths(tmp_path_factory, demo_birds) -> dict:
    """The two demo atlases with their `predictions` section, built once for the whole run
    and shared by the workers (tests/stimuli_helpers.py; read-only for the tests)."""
    from filelock import FileLock

    from stimuli_helpers import build_demo_atlases

    base = shared_path(tmp_path_factory, "demo-atlases")
    with FileLock(str(base) + ".lock"):
        return build_demo_atlases(base, birds=demo_birds)
