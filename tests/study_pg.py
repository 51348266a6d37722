"""A throwaway PostgreSQL 15 server for the answer-store tests (Debian's packages).

PostgreSQL refuses to run as root, and CI runs tests as root: the server is started as
the `postgres` user (`runuser -u postgres --`) in a temporary folder it owns, listening
on 127.0.0.1 at a free port. Tests are skipped, with the reason, only when the binaries
(or the user) are missing.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PgUnavailable(RuntimeError):
    """No PostgreSQL 15 server can be started here (the message says why)."""


@contextmanager
def running_pg_server(fsync: bool = False):
    """Start a throwaway server; yields its base URL (without database). Used by the tests'
    fixture (fsync off: faster) and by bench/bench_store_load.py (fsync on, as in use)."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        raise PgUnavailable(f"PostgreSQL 15 binaries not found in {PG_BIN} (apt-get install postgresql-15)")
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PgUnavailable("running as root and there is no 'postgres' user to run the server as") from None
        if shutil.which("runuser") is None:
            raise PgUnavailable("running as root and runuser is missing")
    tmp = Path(tempfile.mkdtemp(prefix="study-pg-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        for p in (tmp, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                 "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
    opts = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'} "
            f"-c max_connections=200")
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "log"),
                                 "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def fresh_database(server: str) -> str:
    """A new, empty database on `server` (a base URL from `running_pg_server`)."""
    import psycopg
    name = "t_" + uuid.uuid4().hex[:12]
    base = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


@pytest.fixture(scope="session")
def pg_server():
    """Base URL (without database) of a running PostgreSQL 15 server."""
    try:
        with running_pg_server() as url:
            yield url
    except PgUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the throwaway server for one test."""
    yield fresh_database(pg_server)
