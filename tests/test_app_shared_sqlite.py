"""`python -m app` counts the app processes that write one SQLite answer store
(app/processes.py): a second one is warned at start, more than were measured by
bench/bench_store_load.py are refused; the registration survives the exec into
Streamlit and ends with the process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


from app import __main__ as launcher
from app import processes

ROOT = Path(__file__).resolve().parent.parent
HOLD = ("import os, sys; from app import processes; processes.register(processes.registry(sys.argv[1], "
        "sys.argv[2] or None)); print('registered', flush=True); "
        "os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)'])")


def _app_process(home: Path, db: str = "") -> subprocess.Popen:
    """A process that registers as the launcher does, then execs into another program."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(home), db], cwd=home,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "registered"
    return proc


def _start(home: Path, monkeypatch, capsys) -> tuple[int | None, str]:
    """Run the launcher up to the exec into Streamlit (not started: the test stops there)."""
    started = []
    monkeypatch.setattr(os, "execv", lambda *a: started.append(a))
    code = launcher.main(["--home", str(home), "--no-build"])
    return (code if not started else None), capsys.readouterr().err


def test_registration_survives_exec_and_ends_with_the_process(tmp_path):
    folder = processes.registry(tmp_path, None)
    assert folder == tmp_path.resolve() / ".app-processes"
    procs = [_app_process(tmp_path) for _ in range(2)]
    assert processes.live_processes(folder) == 2            # held by the exec'd programs
    procs[0].kill()
    procs[0].wait()
    assert processes.live_processes(folder) == 1
    assert len(list(folder.iterdir())) == 1                 # the stale entry is removed
    procs[1].kill()
    procs[1].wait()
    assert processes.live_processes(folder) == 0


def test_second_process_on_one_sqlite_store_is_warned(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROTOPROTO_PASSWORD", "x" * 12)
    monkeypatch.delenv("PROTOPROTO_DB", raising=False)
    monkeypatch.delenv("PROTOPROTO_BASE_URL", raising=False)
    first = _app_process(tmp_path)
    try:
        code, err = _start(tmp_path, monkeypatch, capsys)
        assert code is None                                    # started anyway
        assert err.splitlines() == [
            f"warning: 2 app processes share the SQLite answer store {tmp_path.resolve()}/studies/*/answers.sqlite: "
            f"writers queue for it in turn (measured up to {processes.SQLITE_MEASURED_PROCESSES} writing "
            f"processes, docs/APP.md); for more simultaneous participants use PostgreSQL "
            f"(PROTOPROTO_DB=postgresql://...)"]
        monkeypatch.setattr(processes, "SQLITE_MEASURED_PROCESSES", 1)   # beyond what was measured: refused
        code, err = _start(tmp_path, monkeypatch, capsys)
        assert code == 1 and err.startswith("error: 2 app processes would share the SQLite answer store")
    finally:
        first.kill()
        first.wait()


def test_postgresql_and_separate_stores_are_not_counted(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PROTOPROTO_PASSWORD", "x" * 12)
    assert processes.registry(tmp_path, "postgresql://u@h/db") is None
    db = tmp_path / "shared.sqlite"
    assert processes.registry(tmp_path, f"sqlite:///{db}") == processes.registry(tmp_path / "x", str(db))
    first = _app_process(tmp_path, str(db))
    try:
        monkeypatch.setenv("PROTOPROTO_DB", "postgresql://u@h/db")
        assert _start(tmp_path, monkeypatch, capsys) == (None, "")
        monkeypatch.delenv("PROTOPROTO_DB")                      # the studies' own files: another store
        other = tmp_path / "other"
        other.mkdir()
        assert _start(other, monkeypatch, capsys) == (None, "")
        monkeypatch.setenv("PROTOPROTO_DB", str(db))            # the same file from another workspace
        code, err = _start(other, monkeypatch, capsys)
        assert code is None and err.startswith(f"warning: 2 app processes share the SQLite answer store {db}")
    finally:
        first.kill()
        first.wait()
