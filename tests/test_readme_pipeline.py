"""The README's command-line pipeline runs as written, from a folder that is not the repository.

The block marked `<!-- readme-pipeline: synthetic ... -->` is executed by bash in a
temporary current folder with only `repo=` pointed at this checkout (the one value the
README asks the reader to set) and without PYTHONPATH, so `python -m core|study` must
work because the project is installed, not because the current folder is the repo root.
The real-data block is not run (it needs CUB-200-2011, a running app and a crowd batch);
its commands are checked against the command registries.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def readme_block(marker: str) -> str:
    """The fenced bash block right after the `<!-- readme-pipeline: MARKER ... -->` comment."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- readme-pipeline: " + re.escape(marker) + r"\b[^>]*-->\s*```bash\n(.*?)```", text, re.S)
    assert found, f"README.md has no bash block marked 'readme-pipeline: {marker}'"
    return found.group(1)


def commands(block: str) -> list[tuple[str, str]]:
    """(package, command) of every `$py -m PACKAGE COMMAND` line."""
    return re.findall(r"^\$py -m (core|study|app) ([a-z-]+)", block, re.M)


def test_real_data_block_uses_existing_commands():
    from app.__main__ import COMMANDS as APP
    from core.cli import COMMANDS as CORE
    from study.cli import COMMANDS as STUDY

    tables = {"core": CORE, "study": STUDY, "app": APP}
    for block in (readme_block("synthetic"), readme_block("real data")):
        used = commands(block)
        assert used
        for package, name in used:
            assert name in tables[package], f"README uses unknown command {package} {name}"
    assert "demo" not in CORE and "demo" in APP   # the demo workspace holds studies: app's command
    # the example specs the README copies exist
    for spec in re.findall(r"\$repo/(study/examples/\S+\.yaml)", readme_block("synthetic") + readme_block("real data")):
        assert (ROOT / spec).is_file(), spec


def run_block(marker: str, work: Path) -> subprocess.CompletedProcess:
    """Run the README block `marker` with bash in `work`, `repo=` set to this checkout."""
    if not VENV_PYTHON.is_file():
        pytest.skip("the README's pipeline needs .venv (bash scripts/setup.sh)")
    lines = readme_block(marker).splitlines()
    repo_lines = [i for i, line in enumerate(lines) if re.match(r"repo=\S+", line)]
    assert len(repo_lines) == 1, "the block sets repo= exactly once"
    lines[repo_lines[0]] = f"repo={shlex.quote(str(ROOT))}"
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    work.mkdir()
    done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, f"README block {marker!r} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_readme_pipeline_runs_as_written_from_another_folder(tmp_path):
    work = tmp_path / "work"
    started = time.time()
    done = run_block("synthetic", work)

    # every artifact the README promises, in the current folder (not in the repository)
    assert (work / "runs" / "tiny" / "model.pt").is_file() and (work / "runs" / "tiny-nofocal" / "model.pt").is_file()
    for atlas in ("birds-protopool", "birds-nofocal"):
        assert (work / "atlases" / atlas / "atlas.json").is_file()
    assert (work / "studies" / "sal-1" / "study.json").is_file() and (work / "studies" / "cons-1" / "study.json").is_file()
    assert (work / "mturk" / "input.csv").is_file()
    answers = pd.read_csv(work / "answers.csv")
    assert answers["participant_id"].nunique() == 12
    assert set(answers["kind"]) == {"saliency", "attention"}
    assert set(answers.loc[answers["kind"] == "saliency", "method"]) == {"ProtoPool", "ProtoPool w/o focal"}
    assert not (work / "studies" / "sal-1" / "answers.sqlite").exists() or \
        "sim-" not in (work / "studies" / "sal-1" / "answers.sqlite").read_bytes().decode("latin-1")
    assert any((work / "reports" / "sal-1").iterdir())
    assert "participants" in done.stdout          # the power plan's answer
    # and nothing was written into the repository's own folders
    for name in ("data", "runs", "atlases", "studies", "reports", "mturk"):
        assert not (ROOT / name).exists() or (ROOT / name).stat().st_mtime < started, name


def test_own_images_block_runs_as_written(tmp_path):
    """"Your own images": a folder data set (one folder per class) through training, an
    unnamed atlas, a consistency study, simulated answers and the analysis."""
    work = tmp_path / "work"
    started = time.time()
    run_block("own images", work)
    model = work / "runs" / "own" / "model.pt"
    assert model.is_file()
    atlas = json.loads((work / "atlases" / "photos-protopool" / "atlas.json").read_text())
    assert atlas["dataset"]["num_classes"] == 4 and atlas["heatmaps"]
    assert all(p["name"] is None for p in atlas["prototypes"])          # no CUB attributes: no names
    assert (work / "studies" / "photo-cons" / "study.json").is_file()
    summary = json.loads((work / "reports" / "photo-cons" / "summary.json").read_text())
    assert summary["consistency"] is not None
    for name in ("photos", "runs", "atlases", "studies", "reports"):
        assert not (ROOT / name).exists() or (ROOT / name).stat().st_mtime < started, name
