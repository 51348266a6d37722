"""How many app processes share one SQLite answer store; checked by `python -m app` at start.

Why: SQLite takes one writer at a time. The writer queue (study/writer_lock.py) serves
writers of all processes in turn, and bench/bench_store_load.py measured how far that
goes: up to SQLITE_MEASURED_PROCESSES processes writing at once (docs/APP.md has the
figures). Several app processes on one SQLite store therefore get a warning at start,
and more than were measured are refused: use PostgreSQL (PROTOPROTO_DB=postgresql://...).

How processes are counted: each app process holds an exclusive flock on its own file in
a registry folder next to the store (`<file>.app-processes/` for PROTOPROTO_DB=FILE,
`HOME/.app-processes/` for the studies' own answers.sqlite files). The lock is held on
a file descriptor that survives the launcher's exec into Streamlit, and the kernel
drops it when the process ends, so a file whose lock can be taken is a process that is
gone (it is removed). PostgreSQL stores are not counted.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: not counted
    fcntl = None  # type: ignore[assignment]

SQLITE_MEASURED_PROCESSES = 50     # bench_store_load.py: 50 writing processes on one SQLite file
_MINE: dict[Path, int] = {}        # registry folder -> the descriptor holding this process's lock


def registry(home: str | Path, db: str | None) -> Path | None:
    """The registry folder of the store the app will write (None: PostgreSQL)."""
    if db and "://" in db:
        if not db.startswith("sqlite:///"):
            return None
        db = db[len("sqlite:///"):]
    if db:
        return Path(str(Path(db).resolve()) + ".app-processes")
    return Path(home).resolve() / ".app-processes"


def live_processes(folder: Path) -> int:
    """App processes registered in `folder` that are still running (stale entries removed)."""
    if fcntl is None or not folder.is_dir():
        return 0
    live = 0
    for entry in folder.iterdir():
        if entry.name == str(os.getpid()):
            continue                          # this process
        try:
            fd = os.open(entry, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            live += 1
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()                # its process is gone
        finally:
            os.close(fd)
    return live


def register(folder: Path) -> int:
    """Register this process (held until it ends, across exec); the number of other live
    app processes already registered."""
    others = live_processes(folder)
    if fcntl is None or folder in _MINE:
        return others
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{os.getpid()}", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.set_inheritable(fd, True)              # kept by the Streamlit process this one becomes
    _MINE[folder] = fd
    return others


def check(home: str | Path, db: str | None) -> tuple[str | None, str | None]:
    """Register this app process; (warning, error): at most one is set."""
    folder = registry(home, db)
    if folder is None:
        return None, None
    others = register(folder)
    if others == 0:
        return None, None
    store = db or f"{Path(home).resolve() / 'studies'}/*/answers.sqlite"
    total = others + 1
    if total > SQLITE_MEASURED_PROCESSES:
        return None, (f"{total} app processes would share the SQLite answer store {store}; more than "
                      f"the {SQLITE_MEASURED_PROCESSES} measured (bench/bench_store_load.py): use PostgreSQL "
                      f"(PROTOPROTO_DB=postgresql://...)")
    return (f"{total} app processes share the SQLite answer store {store}: writers queue for it in turn "
            f"(measured up to {SQLITE_MEASURED_PROCESSES} writing processes, docs/APP.md); for more "
            f"simultaneous participants use PostgreSQL (PROTOPROTO_DB=postgresql://...)"), None
