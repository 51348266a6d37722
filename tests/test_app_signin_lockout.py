"""Sign-in backoff (app/auth.py): after 5 wrong passwords a browser session and its address
are locked, doubling per further failure; the lock is shared by all sessions of the
process, and while locked even the right password is not checked."""
from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize("ip, forwarded, expected", [
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),          # a direct connection: its address
    (None, None, "localhost"),
    (None, "198.51.100.1, 10.1.2.3", "10.1.2.3"),            # behind a local proxy: its last hop
    (None, "not-an-address", "localhost"),
])
def test_client_address(ip, forwarded, expected):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert auth.client_address(ip, headers) == expected
