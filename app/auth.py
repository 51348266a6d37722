"""Researcher password: from the environment or Streamlit secrets; constant-time check;
failed sign-ins slow down guessing.

The launcher generates and prints one when neither is set, and hands it to the
Streamlit process through the environment, so a researcher page is never open.

Guessing: every failed sign-in is counted against three keys, and while any of them is
locked no password is even checked:
- the browser session and the address it comes from: after FREE_FAILURES wrong
  passwords each is locked for FIRST_LOCK_S, doubling with every further failure up to
  MAX_LOCK_S;
- the account (there is one researcher password), across all sessions and addresses:
  after ACCOUNT_FREE_FAILURES it is locked for ACCOUNT_FIRST_LOCK_S, doubling up to
  ACCOUNT_MAX_LOCK_S. So guessing from many addresses (or forged ones) is slowed to one
  try per lock, while the researcher is only delayed: once the lock has passed, the
  right password signs in and clears the counts.
The counts live in this process (`GUARD`), shared by all sessions; they are forgotten
FORGET_AFTER_S after the last failure. Every failure is logged (logger
"protoproto.auth": address, session, failures, wait).

The address is the connection's (`st.context.ip_address`; Streamlit gives None for a
connection from this machine, counted as 127.0.0.1). X-Forwarded-For is read only when
the connection comes from a proxy the researcher named (`python -m app --trusted-proxy
ADDR`, or PROTOPROTO_TRUSTED_PROXIES="ADDR,NET/BITS"): then the address is the last
hop that is not itself a trusted proxy (hops further left can be written by anyone).
By default no proxy is trusted, so a header sent by the client itself changes nothing.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import os
import secrets
import threading
import time

ENV_VAR = "PROTOPROTO_PASSWORD"
TRUSTED_PROXIES_ENV = "PROTOPROTO_TRUSTED_PROXIES"
ACCOUNT_KEY = "account:researcher"

log = logging.getLogger("protoproto.auth")
if not log.handlers:   # Streamlit configures only its own loggers: print ours on the app's stderr
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)


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
ACCOUNT_FREE_FAILURES = 10
ACCOUNT_FIRST_LOCK_S = 10.0
ACCOUNT_MAX_LOCK_S = 5 * 60.0
FORGET_AFTER_S = 3600.0


def lock_after(key: str, failures: int) -> float:
    """Seconds a key is locked after its `failures`-th failure (0: not yet)."""
    if key.startswith("account:"):
        free, first, cap = ACCOUNT_FREE_FAILURES, ACCOUNT_FIRST_LOCK_S, ACCOUNT_MAX_LOCK_S
    else:
        free, first, cap = FREE_FAILURES, FIRST_LOCK_S, MAX_LOCK_S
    if failures < free:
        return 0.0
    return min(cap, first * 2.0 ** min(failures - free, 60))


class SignInGuard:
    """Failed sign-ins per key ("session:ID", "address:IP", "account:..."), thread-safe, with backoff."""

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
                lock = lock_after(key, failures)
                self._state[key] = (failures, now + lock, now)
                wait = max(wait, lock)
            if len(self._state) > 10_000:                # forget what has expired
                for key in [k for k, v in self._state.items() if now - v[2] > FORGET_AFTER_S]:
                    del self._state[key]
            return wait

    def failures(self, key: str) -> int:
        """Failures counted against `key` (0 once forgotten)."""
        with self._lock:
            return self._current(key, self.clock())[0]

    def succeeded(self, keys) -> None:
        with self._lock:
            for key in keys:
                self._state.pop(key, None)

    def reset(self) -> None:
        with self._lock:
            self._state.clear()


GUARD = SignInGuard()


def trusted_proxies(value: str | None = None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The proxies whose X-Forwarded-For is believed: `value` (default: the environment
    variable), comma- or space-separated addresses or networks; empty by default."""
    value = os.environ.get(TRUSTED_PROXIES_ENV, "") if value is None else value
    nets = []
    for part in value.replace(",", " ").split():
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {part!r} (--trusted-proxy / {TRUSTED_PROXIES_ENV}) is not "
                             f"an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)") from None
    return nets


def _ip(text: str):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(ip_address: str | None, headers, trusted=None) -> str:
    """The address to count failures against (see the module docstring).

    `ip_address`: the connection's (None: from this machine); `trusted`: the trusted
    proxies (default: `trusted_proxies()`)."""
    nets = trusted_proxies() if trusted is None else trusted
    peer = _ip(ip_address) if isinstance(ip_address, str) and ip_address else ipaddress.ip_address("127.0.0.1")
    if peer is None:
        return str(ip_address)
    label = "localhost" if not ip_address else str(peer)

    def is_trusted(ip) -> bool:
        return any(ip.version == n.version and ip in n for n in nets)

    if not is_trusted(peer):
        return label                       # the header is whatever the client wrote: ignored
    forwarded = headers.get("X-Forwarded-For") if headers is not None else None
    hops = forwarded.split(",") if isinstance(forwarded, str) else []
    for hop in reversed(hops):             # the right-most hop that is not a trusted proxy
        ip = _ip(hop)
        if ip is None:
            return label                   # garbled: count it against the proxy itself
        if not is_trusted(ip):
            return str(ip)
    return label


def signin_keys(context, session_state) -> list[str]:
    """This browser session's, its address's and the account's keys in GUARD."""
    session = session_state.setdefault("_signin_session", secrets.token_hex(8))
    try:
        address = client_address(getattr(context, "ip_address", None), getattr(context, "headers", None))
    except Exception as exc:  # noqa: BLE001 - no request context (bare mode), or a bad
        address = "unknown"   # PROTOPROTO_TRUSTED_PROXIES (`python -m app` refuses it): one shared bucket
        if isinstance(exc, ValueError):
            log.error("%s", exc)
    return [f"session:{session}", f"address:{address}", ACCOUNT_KEY]


def record_failure(keys: list[str]) -> float:
    """Count a wrong password against `keys` in GUARD, log it; the resulting wait (s)."""
    wait = GUARD.failed(keys)
    address = next((k.split(":", 1)[1] for k in keys if k.startswith("address:")), "?")
    session = next((k.split(":", 1)[1] for k in keys if k.startswith("session:")), "?")
    log.warning("failed researcher sign-in from %s (session %s): %d failure(s) from this address, "
                "%d on the account; next try in %.0f s", address, session[:8],
                GUARD.failures(f"address:{address}"), GUARD.failures(ACCOUNT_KEY), wait)
    return wait


def wait_message(wait_s: float) -> str:
    return f"Too many failed sign-ins: try again in {math.ceil(wait_s)} s."
