"""A PostgreSQL server on this machine for `python -m app serve --db local` (Debian's packages).

The data folder is kept (HOME/.postgres by default): answers survive a restart. The
server runs as the child of the launcher (`postgres -D ...`, not a daemon), listens on
127.0.0.1 at a free port and a socket folder inside the data folder's parent, trusts
local connections (nothing but this machine reaches it), keeps fsync on, and stops with
the launcher (app/children.py). PostgreSQL refuses to run as root: as root the server
runs as the `postgres` user, which then owns the data folder.
"""
from __future__ import annotations

import glob
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

from app import children
from study.errors import StudyError
from study.store import create_postgres_database, postgres_answers, shown_url


def bin_dir() -> Path:
    """The newest installed server's binaries."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise StudyError("the PostgreSQL server is not installed (bash scripts/setup.sh --test, or apt-get install "
                         "postgresql); or give the URL of a running one: --db postgresql://USER@HOST:PORT/DB")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StudyError("running as root and there is no 'postgres' user to run PostgreSQL as "
                         "(apt-get install postgresql creates it)") from None
    return "postgres"


def _own(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def start(data: Path, log_path: Path, max_connections: int = 300) -> tuple[subprocess.Popen, str]:
    """Start (initialising on first use) the server on `data`; (process, URL of database `protoproto`)."""
    bindir = bin_dir()
    user = _user()
    data = data.resolve()
    sock = data.parent / (data.name + ".sock")
    for folder in (data.parent, sock):
        folder.mkdir(parents=True, exist_ok=True)
    _own(sock, user)
    if user is not None and subprocess.run(["test", "-w", str(data.parent), "-a", "-x", str(data.parent)],
                                           preexec_fn=children._preexec(user)).returncode != 0:
        raise StudyError(f"PostgreSQL runs as the user {user}, who cannot write in {data.parent}: choose a "
                         f"--pg-data folder {user} can reach (e.g. /var/lib/protoproto/pg), or give --db "
                         "postgresql://... of a running server")
    if not (data / "PG_VERSION").is_file():
        if data.exists() and any(data.iterdir()):
            raise StudyError(f"{data}: not a PostgreSQL data folder (and not empty): choose another --pg-data")
        data.mkdir(exist_ok=True)
        _own(data, user)
        init = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"],
                              capture_output=True, text=True, preexec_fn=children._preexec(user))
        if init.returncode:
            raise StudyError(f"initdb {data} failed: {(init.stderr or init.stdout).strip().splitlines()[-1]}")
    port = free_port()
    log = open(log_path, "ab")
    proc = children.start([str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
                           "-c", "listen_addresses=127.0.0.1", "-c", f"max_connections={max_connections}",
                           "-c", "shared_buffers=128MB"], user=user, log=log)
    base = f"postgresql://postgres@127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise StudyError(f"PostgreSQL on {data} did not start (see {log_path})")
        if _ready(base + "/postgres"):
            break
        if time.monotonic() > deadline:
            children.stop([proc], grace_s=5)
            raise StudyError(f"PostgreSQL on {data} did not answer within 60 s (see {log_path})")
        time.sleep(0.2)
    _create_db(base + "/postgres", "protoproto")
    return proc, base + "/protoproto"


def _ready(url: str) -> bool:
    return postgres_answers(url) is None


def _create_db(url: str, name: str) -> None:
    create_postgres_database(url, name)


def check_url(url: str) -> None:
    """One clear line when a PostgreSQL URL does not answer."""
    first = postgres_answers(url, timeout_s=5)
    if first is not None:
        shown = shown_url(url)
        raise StudyError(f"cannot connect to PostgreSQL at {shown} ({first}): start it and check the URL, "
                         "or use --db local to start one on this machine") from None
