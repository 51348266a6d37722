"""Folders written whole (common/atomic.py): a run killed with SIGKILL leaves a hidden
temporary folder; the next run of `study build`, the MTurk export or an atlas writer
removes it, but never the temporary folder of a build that is still running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from common.atomic import HOST, LEGACY_AFTER_S, STALE_AFTER_S, AtomicFolder, remove_stale
from core.atlas.format import AtlasWriter, empty_manifest
from study.build import build_study
from study.folder import open_study
from study.platforms.mturk_export import export_mturk
from study_helpers import make_saliency_setup

ROOT = Path(__file__).resolve().parent.parent


def _hidden(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def _killed_mid_write(out: Path, body: str = "") -> Path:
    """Run a real process that starts an AtomicFolder for `out`, writes, and is SIGKILLed."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from common.atomic import AtomicFolder
        folder = AtomicFolder({str(out)!r})
        (folder.path / "half.json").write_text("{{")
        {body}
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and p.name.endswith(".partial")]
    assert len(left) == 1 and (left[0] / "half.json").exists()
    return left[0]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_commit_abort_and_replace(tmp_path):
    out = tmp_path / "thing"
    with AtomicFolder(out) as tmp:
        (tmp / "a").write_text("1")
        assert not out.exists() and tmp.name.startswith(".thing.") and tmp.name.endswith(".partial")
    assert (out / "a").read_text() == "1"
    with pytest.raises(RuntimeError), AtomicFolder(out, replace=True) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("boom")
    assert (out / "a").read_text() == "1" and _hidden(tmp_path, "thing") == []
    with pytest.raises(FileExistsError), AtomicFolder(out) as tmp:
        (tmp / "a").write_text("3")
    with AtomicFolder(out, replace=True) as tmp:
        (tmp / "a").write_text("4")
    assert (out / "a").read_text() == "4" and _hidden(tmp_path, "thing") == []


def test_only_provably_stale_folders_are_removed(tmp_path):
    out = tmp_path / "study1"
    dead, old = _dead_pid(), time.time() - STALE_AFTER_S - 60
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            f".study1.{dead}-{HOST}-aaaaaaaa.partial": True,        # this machine, process gone
            f".study1.{dead}-{HOST}-bbbbbbbb.old": True,
            f".study1.{running.pid}-{HOST}-cccccccc.partial": False,  # a build still running
            f".study1.{dead}-abcdef-dddddddd.partial": False,       # another machine: only by age
            f".study1.{dead}-abcdef-eeeeeeee.partial": True,        #   ... and this one is old
            ".study1.k2j4h5g6": False,                               # pre-pid leftover, recent
            ".study1.x9y8z7w6.tmp": True,                            #   ... old
            ".study1.old": True,                                     #   ... old
            ".study10.k2j4h5g6": False,                              # another folder's name
            ".study1.notes": False,                                  # not our pattern
        }
        for name in names:
            (tmp_path / name).mkdir()
        os.utime(tmp_path / f".study1.{dead}-abcdef-eeeeeeee.partial", (old, old))
        for name in (".study1.x9y8z7w6.tmp", ".study1.old", ".study10.k2j4h5g6", ".study1.notes"):
            os.utime(tmp_path / name, (time.time() - LEGACY_AFTER_S - 60,) * 2)
        removed = {p.name for p in remove_stale(out)}
        assert removed == {n for n, stale in names.items() if stale}
        assert all((tmp_path / n).exists() for n, stale in names.items() if not stale)
    finally:
        running.kill()
        running.wait()


def test_study_build_and_mturk_export_clean_up_after_a_killed_run(tmp_path):
    spec = make_saliency_setup(tmp_path, n_images=12, datasets=("birds",), pool_size=10, items_per_version=3,
                               versions=2, attention={"count": 1, "max_failures": 0})
    out = tmp_path / "studies" / "s1"
    out.parent.mkdir()
    # a real `study build` process killed with SIGKILL just before its rename
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from common.atomic import AtomicFolder
        from study.build import build_study
        AtomicFolder.commit = lambda self: os.kill(os.getpid(), signal.SIGKILL)
        build_study({str(spec)!r}, {str(out)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = _hidden(out.parent, "s1")
    assert len(left) == 1 and (out.parent / left[0] / "private" / "key.json").exists()
    build_study(spec, out)
    assert _hidden(out.parent, "s1") == [] and (out / "study.json").exists()

    batch = tmp_path / "mturk" / "batch1"
    batch.parent.mkdir()
    _killed_mid_write(batch)
    export_mturk(open_study(out), "https://cdn.example.org/s1/", batch)
    assert _hidden(batch.parent, "batch1") == [] and (batch / "input.csv").exists()


def test_atlas_writer_cleans_up_but_spares_a_running_writer(tmp_path):
    out = tmp_path / "atlases" / "a1"
    out.parent.mkdir()
    stale = _killed_mid_write(out)
    busy = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from common.atomic import AtomicFolder
        folder = AtomicFolder({str(out)!r})
        print(folder.path, flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        running = Path(busy.stdout.readline().strip())
        assert running.is_dir()
        with AtlasWriter(out) as writer:
            writer.commit(empty_manifest("a1", "M", "birds", ["c0"]))
        assert not stale.exists() and running.is_dir()      # the concurrent writer's folder is kept
        assert (out / "atlas.json").exists()
    finally:
        busy.kill()
        busy.wait()
