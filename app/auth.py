"""Researcher password: from the environment or Streamlit secrets; constant-time check;
failed sign-ins slow down guessing.

The launcher generates and prints one when neither is set, and hands it to the
Streamlit process through the environment, so a researcher page is never open.

Guessing: after FREE_FAILURES wrong passwords, a browser session and the address it
comes from are each locked for FIRST_LOCK_S, doubling with every further failure up to
MAX_LOCK_S; while locked, no password is even checked. The counts live in this
process (`GUARD`), shared by all sessions, so opening new tabs does not reset the
address's count; a right password clears them, and they are forgotten FORGET_AFTER_S
after the last failure. The address is the connection's (`st.context.ip_address`);
behind a reverse proxy on this machine (the connection comes from localhost) it is the
last X-Forwarded-For entry, the one that proxy appended (the first can be forged).
"""
from __future__ import annotations

import hmac
import ipaddress
import math
import os
import secrets
import threading
import time

ENV_VAR = "PROTOPROTO_PASSWORD"


def configured_password() -> str | None:
    value = os.environ.get(ENV_VAR)
    if value:
        return value
    try:
        import streamlit as st

        value = st.secrets.get("password")  # raises if no secrets file exists
    except Exception:  # noqa: BLE001 - no secrets file is the normal case
        value = None
    return str(value) if value else None


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def check(candidate: str, expected: str | None) -> bool:
    if not expected or not candidate:
        return False
    return hmac.compare_digest(candidate.encode(), expected.encode())


FREE_FAILURES = 5
FIRST_LOCK_S = 30.0
MAX_LOCK_S = 15 * 60.0
FORGET_AFTER_S = 3600.0


class SignInGuard:
    """Failed sign-ins per key ("session:ID", "address:IP"), thread-safe, with backoff."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, float, float]] = {}   # key -> (failures, locked_until, last_failure)

    def _current(self, key: str, now: float) -> tuple[int, float, float]:
        entry = self._state.get(key)
        if entry is not None and now - entry[2] > FORGET_AFTER_S:
            del self._state[key]
            entry = None
        return entry or (0, 0.0, now)

    def wait_s(self, keys) -> float:
        """Seconds until any of `keys` may try again (0: now)."""
        with self._lock:
            now = self.clock()
            return max([0.0] + [self._current(k, now)[1] - now for k in keys])

    def failed(self, keys) -> float:
        """Count one failure for every key; the resulting wait in seconds (0: none yet)."""
        with self._lock:
            now = self.clock()
            wait = 0.0
            for key in keys:
                failures = self._current(key, now)[0] + 1
                lock = 0.0 if failures < FREE_FAILURES else \
                    min(MAX_LOCK_S, FIRST_LOCK_S * 2.0 ** (failures - FREE_FAILURES))
                self._state[key] = (failures, now + lock, now)
                wait = max(wait, lock)
            if len(self._state) > 10_000:                # forget what has expired
                for key in [k for k, v in self._state.items() if now - v[2] > FORGET_AFTER_S]:
                    del self._state[key]
            return wait

    def succeeded(self, keys) -> None:
        with self._lock:
            for key in keys:
                self._state.pop(key, None)

    def reset(self) -> None:
        with self._lock:
            self._state.clear()


GUARD = SignInGuard()


def client_address(ip_address: str | None, headers) -> str:
    """The address to count failures against (see the module docstring)."""
    if not isinstance(ip_address, str) or not ip_address:   # None: a connection from localhost
        forwarded = headers.get("X-Forwarded-For") if headers is not None else None
        forwarded = forwarded if isinstance(forwarded, str) else ""
        last = forwarded.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return "localhost"
    return ip_address


def signin_keys(context, session_state) -> list[str]:
    """This browser session's and its address's keys in GUARD."""
    session = session_state.setdefault("_signin_session", secrets.token_hex(8))
    try:
        address = client_address(getattr(context, "ip_address", None), getattr(context, "headers", None))
    except Exception:  # noqa: BLE001 - no request context (bare mode): one shared bucket
        address = "unknown"
    return [f"session:{session}", f"address:{address}"]


def wait_message(wait_s: float) -> str:
    return f"Too many failed sign-ins: try again in {math.ceil(wait_s)} s."
