"""`python -m app serve` at small scale: 2 lean processes, nginx, a local PostgreSQL; 20
simulated participants (app/loadtest/) at a fast pace, one replica killed with SIGKILL
mid-study: every participant finishes on the other, no answer lost or duplicated, the
dead replica is restarted, and SIGTERM stops everything. Bad input is one line each."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import crowd_helpers
from study_pg import PG_BIN
from servers import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.skipif(not Path("/usr/sbin/nginx").exists(), reason="nginx is not installed (bash scripts/setup.sh)"),
    pytest.mark.skipif(not (PG_BIN / "postgres").exists(), reason="PostgreSQL is not installed "
                       "(bash scripts/setup.sh --test)"),
]


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PROTOPROTO_PASSWORD="crowd-test-password", **extra)
    env.pop("PROTOPROTO_DB", None)
    return env


def _pid(log: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.findall(r"\(pid (\d+)\)", log.read_text() if log.exists() else "")
        if found:
            return int(found[-1])
        time.sleep(0.1)
    raise AssertionError(f"no pid in {log}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crowd")
    home = crowd_helpers.workspace(tmp / "ws", items=1)
    run = tmp / "run"
    pg = Path(tempfile.mkdtemp(prefix="crowd-pg-"))      # PostgreSQL runs as `postgres` under root: its own folder
    if os.geteuid() == 0:
        shutil.chown(pg, "postgres", "postgres")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--home", str(home), "--processes", "2",
                             "--db", "local", "--pg-data", str(pg / "data"), "--port", str(port),
                             "--run-dir", str(run)], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    while not any("participant processes, store" in line for line in lines):
        line = proc.stdout.readline()
        assert line or proc.poll() is None, "".join(lines)
        lines.append(line)
        assert time.monotonic() < deadline, "".join(lines)
    db = re.search(r"store (postgresql://\S+);", "".join(lines)).group(1)
    yield dict(home=home, run=run, port=port, proc=proc, db=db, lines=lines, pg=pg)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    shutil.rmtree(pg, ignore_errors=True)


def test_twenty_participants_one_replica_killed(crowd):
    from app.loadtest.common import Pace
    from app.loadtest.harness import Plan, run

    home, runs, port = crowd["home"], crowd["run"], crowd["port"]
    victim = _pid(runs / "lean-0.log")
    plan = Plan(url=f"http://127.0.0.1:{port}/", study_dir=str(home / "studies" / crowd_helpers.STUDY),
                db=crowd["db"], participants=20, pace=Pace(0.05, 0.3), ramp_s=2, limit_s=60, double_click=0.1,
                seed=3)
    killed = threading.Timer(3.0, os.kill, (victim, signal.SIGKILL))
    killed.start()
    result = run(plan)
    killed.join()
    print(result.report())
    assert not _alive(victim)
    assert result.errors == []
    assert result.finished == 20
    assert result.lost == 0 and result.duplicates == 0 and result.duplicate_participants == 0
    assert result.stored == result.acked == 20 * 8                  # 6 questions + 2 attention checks each
    # the dead replica was restarted, and answers again
    deadline = time.monotonic() + 30
    while _pid(runs / "lean-0.log") == victim:
        assert time.monotonic() < deadline, "participant process 0 was not restarted"
        time.sleep(0.2)
    assert _alive(_pid(runs / "lean-0.log"))


def test_researcher_door_and_bad_input(crowd):
    import urllib.request

    port = crowd["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/researcher/", timeout=30) as resp:
        assert resp.status == 200 and b"<html" in resp.read().lower()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/researcher/_stcore/health", timeout=30) as resp:
        assert resp.read() == b"ok"
    # Streamlit's websocket and its media through nginx: one participant on the Streamlit page there
    from app.loadtest.common import Pace
    from app.loadtest.harness import Plan, run

    result = run(Plan(url=f"http://127.0.0.1:{port}/researcher/", db=crowd["db"], page="streamlit",
                      study_dir=str(crowd["home"] / "studies" / crowd_helpers.STUDY), participants=1,
                      pace=Pace(0, 0), ramp_s=0, limit_s=90, double_click=0, seed=5))
    assert result.errors == [] and result.finished == 1 and result.stored == 8 and result.lost == 0, result.report()
    home = str(crowd["home"])
    cases = {
        "busy": (["--port", str(port)], {}, f"error: port {port} on 127.0.0.1 is already in use"),
        "no postgres": (["--port", str(free_port()), "--db", f"postgresql://postgres@127.0.0.1:{free_port()}/x"],
                        {}, "error: cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:"),
        "no nginx": (["--port", str(free_port())], {"PROTOPROTO_NGINX": "/nonexistent/nginx"},
                     "error: nginx is not installed at /nonexistent/nginx"),
    }
    procs = {name: subprocess.Popen([sys.executable, "-m", "app", "serve", "--home", home, *args], env=_env(**env),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (args, env, _) in cases.items()}                # at once: each is a Python start
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=90)
        errors = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 1, (name, out, err)
        assert len(errors) == 1 and errors[0].startswith(cases[name][2]), (name, errors)


def test_sigterm_stops_everything(crowd):
    runs, proc = crowd["run"], crowd["proc"]
    pids = [_pid(runs / "lean-0.log"), _pid(runs / "lean-1.log")]
    pids.append(int((runs / "nginx.pid").read_text()))
    pg_pid = int((crowd["pg"] / "data" / "postmaster.pid").read_text().split()[0])
    pids.append(pg_pid)
    assert all(_alive(p) for p in pids)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    time.sleep(0.5)
    assert [p for p in pids if _alive(p)] == []
