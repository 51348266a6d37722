"""A workspace with one saliency study for the crowd tests and benches (no torch: the
atlases are tests/study_helpers.py's synthetic ones), built once per process."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

STUDY = "crowd-saliency"


@functools.lru_cache(maxsize=4)
def template(items: int = 10) -> Path:
    """HOME with studies/crowd-saliency (`items` questions + 2 attention checks per version)."""
    from study.build import build_study
    from study_helpers import make_saliency_setup

    base = Path(tempfile.mkdtemp(prefix="crowd-ws-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    home = base / "home"
    home.mkdir()
    spec = make_saliency_setup(home, items_per_version=items, versions=4, pool_size=max(30, 3 * items))
    build_study(spec, home / "studies" / STUDY)
    return home


def workspace(dest: Path, items: int = 10) -> Path:
    """A fresh copy of the template (its own answers.sqlite)."""
    shutil.copytree(template(items), dest, symlinks=True)
    return dest
