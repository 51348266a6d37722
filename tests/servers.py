"""Real servers for the end-to-end tests: a free local port, `python -m app` started as a
user starts it (a subprocess, its log in a file) and stopped again, and headless Chromium
(Debian's /usr/bin/chromium through Playwright)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Wait for Streamlit's health endpoint under `url`; fail with the log's tail when the
    process ends or `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the app did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)


@contextlib.contextmanager
def app_server(home: Path, log: Path, *, env: dict[str, str] | None = None,
               drop: tuple[str, ...] = ("PROTOPROTO_DB", "PROTOPROTO_BASE_URL"),
               args: tuple[str, ...] = ()) -> Iterator[str]:
    """`python -m app --home HOME --port P [args]` from the repository folder, with the
    environment less `drop` plus `env`, output to `log`; yields its URL once healthy and
    stops it afterwards."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k not in drop}
    environ.update(PYTHONUNBUFFERED="1", **(env or {}))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "--port", str(port), *args],
                                cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            wait_healthy(url, proc, log)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def chromium():
    """A headless Chromium (Playwright's sync API); skips the test when none is installed."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (Debian package chromium; "
                    "`bash scripts/setup.sh --test` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
