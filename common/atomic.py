"""Write a whole folder, then rename it into place: readers see the old folder or the new
one, never half of one.

    with AtomicFolder(out, replace=True) as tmp:     # `tmp` is a Path to fill
        (tmp / "a.json").write_text(...)
        ...                                            # an exception removes tmp
    # leaving the block normally renames tmp to `out` (the old `out`, if any, is removed)

The temporary folder is a hidden sibling named `.{NAME}.{pid}-{host}-{random}.partial`
(the folder being replaced goes to `... .old` for the instant of the swap). A run killed
with SIGKILL cannot remove it, so every new AtomicFolder for the same NAME first removes
such leftovers, but only provably stale ones: made on this machine by a process that no
longer runs, or (another machine on a shared disk, or a reused pid) older than
STALE_AFTER_S. A concurrent build of the same name is never touched. Leftovers of older
versions of this code (`.{NAME}.xxxxxxxx`, `.{NAME}.xxxxxxxx.tmp`, `.{NAME}.old`,
`.{NAME}.old-PID`) carry no pid and are removed once older than LEGACY_AFTER_S.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

STALE_AFTER_S = 24 * 3600
LEGACY_AFTER_S = 3600
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_OURS = re.compile(r"(?P<pid>\d+)-(?P<host>[0-9a-f]{6})-[0-9a-z]{8}\.(?:partial|old)")
_LEGACY = re.compile(r"(?:[a-z0-9_]{8}(?:\.tmp)?|old|old-\d+)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, belongs to someone else
        return True
    return True


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def is_stale(path: Path, name: str) -> bool:
    """Whether `path` (a sibling of the folder `name`) is a leftover temporary folder of ours
    that no running writer can still be using."""
    prefix = f".{name}."
    if not path.name.startswith(prefix) or not path.is_dir() or path.is_symlink():
        return False
    rest = path.name[len(prefix):]
    ours = _OURS.fullmatch(rest)
    if ours:
        pid = int(ours["pid"])
        if ours["host"] == HOST and pid != os.getpid() and not _pid_alive(pid):
            return True
        return _age_s(path) > STALE_AFTER_S
    if _LEGACY.fullmatch(rest):
        return _age_s(path) > LEGACY_AFTER_S
    return False


def remove_stale(out: str | Path) -> list[Path]:
    """Remove the stale temporary siblings of folder `out`; returns what was removed."""
    out = Path(out)
    removed: list[Path] = []
    try:
        siblings = list(out.parent.iterdir())
    except FileNotFoundError:
        return removed
    for path in siblings:
        if is_stale(path, out.name):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _sibling(out: Path, kind: str) -> Path:
    token = "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(8))
    return out.with_name(f".{out.name}.{os.getpid()}-{HOST}-{token}.{kind}")


class AtomicFolder:
    """A hidden temporary sibling of `out` (mode 0700 until `commit`, which sets `mode` if
    given), renamed to `out` by `commit()` (or on leaving a `with` block without an
    exception); `abort()` (or an exception) removes it."""

    def __init__(self, out: str | Path, *, replace: bool = False, mode: int | None = None):
        self.out = Path(out)
        self.replace = replace
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.removed_stale = remove_stale(self.out)
        self.path = _sibling(self.out, "partial")
        self.path.mkdir(mode=0o700)
        self.mode = mode
        self.done = False

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
        elif not self.done:
            self.commit()

    def commit(self) -> Path:
        """Rename into place; an existing `out` is replaced only with `replace=True`
        (FileExistsError otherwise, and the temporary folder is removed)."""
        try:
            if self.mode is not None:
                os.chmod(self.path, self.mode)
            if self.out.exists() or self.out.is_symlink():
                if not self.replace:
                    raise FileExistsError(f"{self.out}: already exists")
                old = _sibling(self.out, "old")
                os.replace(self.out, old)
                os.replace(self.path, self.out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(self.path, self.out)
        except BaseException:
            self.abort()
            raise
        self.done = True
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.done = True


def write_atomic(path: str | Path, data: str | bytes, *, encoding: str = "utf-8", newline: str | None = None,
                 fsync: bool = False) -> Path:
    """Write one file all at once: `data` goes to a hidden temporary sibling
    (`.{NAME}.*.tmp`), which is then renamed over `path`. Readers see the old file or the
    new one, never half of one; a failure removes the temporary file and leaves `path`
    as it was. `str` is written as text (`encoding`, `newline` as for `open`), `bytes`
    as is; `fsync` flushes to disk before the rename (for records that must survive a
    crash)."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if isinstance(data, bytes | bytearray):
            with os.fdopen(fd, "wb") as binary:
                binary.write(data)
                _flush(binary, fsync)
        else:
            with os.fdopen(fd, "w", encoding=encoding, newline=newline) as text:
                text.write(data)
                _flush(text, fsync)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _flush(fh: IO[Any], fsync: bool) -> None:
    if fsync:
        fh.flush()
        os.fsync(fh.fileno())
