"""The load harness speaks Streamlit's websocket protocol to a real Streamlit participant
page (app/main.py): two simulated participants consent, answer every question (attention
checks as asked, one double click) and finish, and the store holds exactly their answers."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import crowd_helpers
from servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_streamlit_protocol_participants_finish(tmp_path):
    from app.loadtest.common import Pace
    from app.loadtest.harness import Plan, run

    home = crowd_helpers.workspace(tmp_path / "ws", items=1)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), PROTOPROTO_PASSWORD="harness-password-1")
    env.pop("PROTOPROTO_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "app", "--home", str(home), "--no-build", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "Streamlit did not start"
                time.sleep(0.3)
        plan = Plan(url=f"http://127.0.0.1:{port}/", study_dir=str(home / "studies" / crowd_helpers.STUDY),
                    participants=2, pace=Pace(0, 0), page="streamlit", ramp_s=0.5, limit_s=150,
                    double_click=0.2, seed=1)
        result = run(plan)
    finally:
        proc.terminate()
        proc.wait(20)
    print(result.report())
    assert result.errors == []
    assert result.finished == 2 and all(r.code for r in result.records)
    assert result.stored == result.acked == 2 * 8 and result.lost == 0 and result.duplicates == 0
    assert len(result.clicks) == 16
