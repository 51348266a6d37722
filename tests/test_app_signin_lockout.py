"""Sign-in backoff (app/auth.py): after 5 wrong passwords a browser session and its address
are locked, doubling per further failure; after 10 across all sessions and addresses the
account is (a shorter, growing delay); the lock is shared by all sessions of the process,
and while locked even the right password is not checked. X-Forwarded-For counts only
from a trusted proxy."""
from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

import app_helpers
from app import auth

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


@pytest.fixture()
def clock(tmp_path, monkeypatch):
    ws = app_helpers.workspace(tmp_path / "ws")
    monkeypatch.setenv("PROTOPROTO_HOME", str(ws))
    monkeypatch.setenv("PROTOPROTO_PASSWORD", app_helpers.PASSWORD)
    now = [1000.0]
    monkeypatch.setattr(auth.GUARD, "clock", lambda: now[0])
    auth.GUARD.reset()
    yield now
    auth.GUARD.reset()


def _session() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    assert [t.value for t in at.title] == ["Researcher sign-in"]
    return at


def _try(at: AppTest, password: str) -> list[str]:
    at.text_input(key="password").input(password)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def _signed_in(at: AppTest) -> bool:
    return bool(at.sidebar.radio)


def test_five_failures_lock_the_session_and_the_address(clock):
    a = _session()
    for _ in range(4):
        assert _try(a, "guess") == ["Wrong password."]
    assert _try(a, "guess") == ["Wrong password. Too many failed sign-ins: try again in 30 s."]
    # locked: the right password is not even checked
    assert _try(a, app_helpers.PASSWORD) == ["Too many failed sign-ins: try again in 30 s."]
    assert not _signed_in(a)
    # a new browser session from the same address is locked too (state shared in the process)
    b = _session()
    clock[0] += 10
    assert _try(b, app_helpers.PASSWORD) == ["Too many failed sign-ins: try again in 20 s."]
    assert not _signed_in(b)
    # once the lock has passed, session a's next failure doubles the wait
    clock[0] += 21
    assert _try(a, "guess") == ["Wrong password. Too many failed sign-ins: try again in 60 s."]
    clock[0] += 61
    assert _try(b, app_helpers.PASSWORD) == [] and _signed_in(b)   # a right password clears the address


def test_backoff_is_capped_and_forgotten():
    now = [0.0]
    guard = auth.SignInGuard(clock=lambda: now[0])
    keys = ["session:x", "address:10.0.0.7"]
    waits = []
    for _ in range(12):
        waits.append(guard.failed(keys))
        now[0] += waits[-1]
    assert waits[:4] == [0, 0, 0, 0] and waits[4:8] == [30, 60, 120, 240]
    assert max(waits) == auth.MAX_LOCK_S
    assert guard.wait_s(["address:10.0.0.7"]) == 0          # the last lock has just passed
    assert guard.failed(["address:10.0.0.7"]) == auth.MAX_LOCK_S
    now[0] += auth.FORGET_AFTER_S + 1
    assert guard.wait_s(keys) == 0 and guard.failed(keys) == 0   # forgotten after an hour


@pytest.mark.parametrize("ip, forwarded, trusted, expected", [
    ("203.0.113.9", "198.51.100.1", "", "203.0.113.9"),            # a direct connection: its address
    (None, None, "", "localhost"),
    (None, "198.51.100.1, 10.1.2.3", "", "localhost"),              # no proxy trusted: header ignored
    ("203.0.113.9", "10.1.2.3", "127.0.0.1", "203.0.113.9"),        # not from the trusted proxy
    (None, "198.51.100.1, 10.1.2.3", "127.0.0.1", "10.1.2.3"),      # behind a trusted local proxy: its hop
    ("10.0.0.2", "198.51.100.1, 203.0.113.5, 10.0.0.3", "10.0.0.0/8", "203.0.113.5"),  # chain of proxies
    (None, "not-an-address", "127.0.0.1", "localhost"),
    (None, None, "127.0.0.1", "localhost"),
    ("::1", "2001:db8::7", "::1", "2001:db8::7"),
])
def test_client_address(ip, forwarded, trusted, expected):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert auth.client_address(ip, headers, auth.trusted_proxies(trusted)) == expected


def test_trusted_proxies_come_from_the_environment_and_are_checked(monkeypatch):
    monkeypatch.delenv(auth.TRUSTED_PROXIES_ENV, raising=False)
    assert auth.trusted_proxies() == []                                  # none by default
    monkeypatch.setenv(auth.TRUSTED_PROXIES_ENV, "127.0.0.1, 10.0.0.0/8")
    assert auth.client_address(None, {"X-Forwarded-For": "198.51.100.4"}) == "198.51.100.4"
    monkeypatch.setenv(auth.TRUSTED_PROXIES_ENV, "proxy.example")
    with pytest.raises(ValueError, match="trusted proxy 'proxy.example'"):
        auth.trusted_proxies()


def _forged(monkeypatch, addresses, ip=None):
    """Each sign-in's request carries the next forged X-Forwarded-For (from `ip`: None = localhost)."""
    real = auth.signin_keys
    hops = iter(addresses)
    monkeypatch.setattr(auth, "signin_keys", lambda context, state: real(
        SimpleNamespace(ip_address=ip, headers={"X-Forwarded-For": next(hops)}), state))


def test_forged_forwarded_headers_with_new_sessions_are_locked_out(clock, monkeypatch, caplog):
    """The battery's attack: from localhost, a new session and a new forged address per try."""
    monkeypatch.delenv(auth.TRUSTED_PROXIES_ENV, raising=False)
    _forged(monkeypatch, (f"198.51.100.{i}" for i in itertools.count(1)))
    caplog.set_level(logging.WARNING, logger="protoproto.auth")
    errors = [_try(_session(), "guess") for _ in range(auth.FREE_FAILURES)]
    assert errors[:-1] == [["Wrong password."]] * (auth.FREE_FAILURES - 1)
    assert errors[-1] == ["Wrong password. Too many failed sign-ins: try again in 30 s."]
    late = _session()
    assert _try(late, app_helpers.PASSWORD) == ["Too many failed sign-ins: try again in 30 s."]
    assert not _signed_in(late)
    failures = [r.getMessage() for r in caplog.records if r.name == "protoproto.auth"]
    assert len(failures) == auth.FREE_FAILURES and all("from localhost" in m for m in failures)
    assert "5 failure(s) from this address" in failures[-1]
    clock[0] += 30                      # after the delay the right password still signs in
    assert _try(late, app_helpers.PASSWORD) == [] and _signed_in(late)


def test_the_account_is_slowed_across_addresses_then_signs_in(clock, monkeypatch, caplog):
    """Real, different addresses behind a trusted proxy: each address stays under its own
    limit, but the account's count grows across them."""
    monkeypatch.setenv(auth.TRUSTED_PROXIES_ENV, "127.0.0.1")
    _forged(monkeypatch, (f"203.0.113.{i}" for i in itertools.count(1)))
    caplog.set_level(logging.WARNING, logger="protoproto.auth")
    n = auth.ACCOUNT_FREE_FAILURES
    errors = [_try(_session(), "guess") for _ in range(n)]
    assert errors[:-1] == [["Wrong password."]] * (n - 1)
    assert errors[-1] == ["Wrong password. Too many failed sign-ins: try again in 10 s."]
    researcher = _session()              # a new address, the right password: delayed, not refused for good
    assert _try(researcher, app_helpers.PASSWORD) == ["Too many failed sign-ins: try again in 10 s."]
    clock[0] += 10
    assert _try(_session(), "guess") == ["Wrong password. Too many failed sign-ins: try again in 20 s."]
    clock[0] += 20
    assert _try(researcher, app_helpers.PASSWORD) == [] and _signed_in(researcher)
    logged = [r.getMessage() for r in caplog.records if r.name == "protoproto.auth"]
    assert len(logged) == n + 1 and "from 203.0.113.1 " in logged[0] and f"{n + 1} on the account" in logged[-1]
    assert auth.GUARD.failures(auth.ACCOUNT_KEY) == 0                     # cleared by the right password


def test_account_delay_is_capped():
    now = [0.0]
    guard = auth.SignInGuard(clock=lambda: now[0])
    waits = []
    for i in range(30):
        waits.append(guard.failed([f"address:10.0.{i}.1", auth.ACCOUNT_KEY]))
        now[0] += waits[-1]
    free = auth.ACCOUNT_FREE_FAILURES
    assert waits[:free - 1] == [0] * (free - 1) and waits[free - 1:free + 2] == [10, 20, 40]
    assert max(waits) == auth.ACCOUNT_MAX_LOCK_S < auth.MAX_LOCK_S


def test_launcher_refuses_a_bad_trusted_proxy(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "app", "--home", str(tmp_path), "--no-build",
                           "--trusted-proxy", "localhost:80"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(MAIN).parent.parent)},
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: trusted proxy 'localhost:80' (--trusted-proxy / PROTOPROTO_TRUSTED_PROXIES) is not an "
        "IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)"]
