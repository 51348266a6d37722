"""Child processes that end with their parent (`python -m app serve`, app/serve.py).

Every child is started with PR_SET_PDEATHSIG = SIGTERM (Linux): if the launcher dies,
even by kill -9, the kernel tells each child to stop, so nothing is left orphaned. A
child started as another user (PostgreSQL refuses to run as root) changes user first
and sets the signal after, because a change of user clears it.
"""
from __future__ import annotations

import ctypes
import os
import pwd
import signal
import subprocess
import time

PR_SET_PDEATHSIG = 1


def _preexec(user: str | None):
    def run() -> None:
        if user is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:  # pragma: no cover - not Linux: children then end by the launcher's stop()
            pass
    return run


def start(cmd: list[str], *, env: dict | None = None, user: str | None = None, log=None,
          pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT if log else None,
                            preexec_fn=_preexec(user), pass_fds=pass_fds, close_fds=True)


def stop(procs: list[subprocess.Popen], sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
    """Signal each, wait up to `grace_s` in all, then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
