"""Answer store and participant flow, on SQLite and on a throwaway PostgreSQL 15 server."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text, update

from study.build import build_study
from study.errors import StudyError
from study.session import StudyRunner
from study.store import participants
from study_helpers import make_saliency_setup
from study_pg import pg_server, pg_url  # noqa: F401  (fixtures)

WORKER = Path(__file__).with_name("study_worker.py")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("store")
    spec = make_saliency_setup(tmp, n_images=12, datasets=("birds",), pool_size=10, items_per_version=5,
                               versions=4, attention={"count": 1, "max_failures": 0})
    return build_study(spec, tmp / "studies" / "store-study")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'answers.sqlite'}"
    return request.getfixturevalue("pg_url")


def good_answer(runner: StudyRunner, item_id: str) -> str:
    return runner.key[item_id].get("expected", "3")


def test_answers_once_and_resume_after_reload(study_dir, db):
    runner = StudyRunner.open(study_dir, db)
    token = runner.invite(1)[0]
    p = runner.start(token=token)
    seq = runner.study.versions[p.version]
    for item_id in seq[:3]:
        assert runner.next_item(p.participant_id).item_id == item_id
        assert runner.record_answer(p.participant_id, item_id, good_answer(runner, item_id), 1200).stored
    # a double click / replayed request with another value changes nothing
    replay = runner.record_answer(p.participant_id, seq[2], "1", 5)
    assert not replay.stored
    runner.store.close()

    again = StudyRunner.open(study_dir, db)          # the participant reloads the page
    resumed = again.start(token=token)
    assert resumed.participant_id == p.participant_id and resumed.version == p.version
    item = again.next_item(p.participant_id)
    assert item.position == 3 and item.item_id == seq[3] and item.total == len(seq)
    assert all(m.is_file() and m.parent.name == "media" for m in item.media)
    with again.store.transaction() as conn:
        stored = again.store.answers_of(conn, p.participant_id)
    assert sorted(stored) == sorted(seq[:3])
    assert stored[seq[2]]["answer"] == good_answer(runner, seq[2]) and stored[seq[2]]["response_ms"] == 1200


def test_rejects_out_of_order_foreign_and_invalid_answers(study_dir, db):
    runner = StudyRunner.open(study_dir, db)
    p = runner.start()
    seq = runner.study.versions[p.version]
    other = next(i for v in runner.study.versions for i in v if i not in seq)
    with pytest.raises(StudyError, match="out of order"):
        runner.record_answer(p.participant_id, seq[1], "3")
    with pytest.raises(StudyError, match="not in version"):
        runner.record_answer(p.participant_id, other, "3")
    with pytest.raises(StudyError, match="not one of"):
        runner.record_answer(p.participant_id, seq[0], "6")
    with pytest.raises(StudyError, match="unanswered"):
        runner.finish(p.participant_id)
    with pytest.raises(StudyError, match="unknown link token"):
        runner.start(token="no-such-token-123")


def _complete(runner: StudyRunner, pid: str, fail_attention: bool = False):
    while (item := runner.next_item(pid)) is not None:
        info = runner.key[item.item_id]
        answer = good_answer(runner, item.item_id)
        if fail_attention and info["kind"] == "attention":
            answer = next(v for v in runner.study.option_values if v != info["expected"])
        runner.record_answer(pid, item.item_id, answer, 800)
    return runner.finish(pid)


def test_finish_codes_prolific_redirect_and_screen_out(study_dir, db):
    runner = StudyRunner.open(study_dir, db)
    codes = runner.study.manifest["codes"]
    p = runner.start(platform="prolific", worker_id="5f1a2b3c", platform_study_id="S1", platform_session_id="X1")
    assert runner.start(platform="prolific", worker_id="5f1a2b3c").participant_id == p.participant_id
    done = _complete(runner, p.participant_id)
    assert done.status == "finished" and done.code == codes["completion"]
    assert done.redirect_url == f"https://app.prolific.com/submissions/complete?cc={codes['completion']}"
    assert runner.finish(p.participant_id) == done            # idempotent
    assert runner.next_item(p.participant_id) is None

    q = runner.start()
    out = _complete(runner, q.participant_id, fail_attention=True)
    assert out.status == "screened_out" and out.code == codes["screen_out"] and out.redirect_url is None
    rows = {r["participant_id"]: r for r in runner.store.participants_of(runner.study.id)}
    assert rows[p.participant_id]["attention_passed"] == 1 and rows[p.participant_id]["completion_code"] == codes["completion"]
    assert rows[q.participant_id]["attention_passed"] == 0 and rows[q.participant_id]["status"] == "screened_out"
    assert rows[p.participant_id]["platform_session_id"] == "X1"


def test_versions_go_to_least_filled_cell(study_dir, db):
    runner = StudyRunner.open(study_dir, db)
    first = [runner.start() for _ in range(4)]
    assert sorted(p.version for p in first) == [0, 1, 2, 3]
    _complete(runner, first[0].participant_id)
    _complete(runner, first[1].participant_id)
    # two starts of versions 2 and 3 went stale (abandoned long ago): their cells count as empty
    with runner.store.transaction() as conn:
        conn.execute(update(participants).where(participants.c.participant_id.in_(
            [first[2].participant_id, first[3].participant_id])).values(started_at="2000-01-01T00:00:00.000Z"))
    nxt = [runner.start().version for _ in range(2)]
    assert sorted(nxt) == [2, 3]
    counts = Counter(p["version"] for p in runner.store.participants_of(runner.study.id))
    assert max(counts.values()) - min(counts.values()) <= 1


def test_fingerprint_of_another_build_is_refused(study_dir, db, tmp_path):
    StudyRunner.open(study_dir, db).store.close()
    import json
    import shutil
    other = tmp_path / "copy"
    shutil.copytree(study_dir, other)
    manifest = json.loads((other / "study.json").read_text())
    manifest["fingerprint"] = "0" * 16
    (other / "study.json").write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match="another build"):
        StudyRunner.open(other, db)


def test_concurrent_threads_lose_and_duplicate_nothing(study_dir, db):
    runner = StudyRunner.open(study_dir, db)
    n_threads, errors = 12, []
    started = []

    def participant():
        try:
            p = runner.start()
            started.append(p)
            while (item := runner.next_item(p.participant_id)) is not None:
                a = good_answer(runner, item.item_id)
                # the same answer sent twice at once (double click from two tabs)
                twins = [threading.Thread(target=runner.record_answer, args=(p.participant_id, item.item_id, a, 10))
                         for _ in range(2)]
                [t.start() for t in twins]
                [t.join() for t in twins]
            runner.finish(p.participant_id)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=participant) for _ in range(n_threads)]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    assert not errors, errors
    rows = runner.store.export_rows(runner.study.id)
    per_item = Counter((r["participant_id"], r["item_id"]) for r in rows)
    assert max(per_item.values()) == 1
    seq_len = len(runner.study.versions[0])
    assert len(rows) == n_threads * seq_len
    versions = Counter(p.version for p in started)
    assert sorted(versions.values()) == [3, 3, 3, 3]


def test_concurrent_processes(study_dir, db):
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(study_dir), db, "run", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    runner = StudyRunner.open(study_dir, db)
    people = runner.store.participants_of(runner.study.id)
    assert len(people) == 8 and all(p["status"] == "finished" for p in people)
    assert sorted(Counter(p["version"] for p in people).values()) == [2, 2, 2, 2]
    rows = runner.store.export_rows(runner.study.id)
    assert len(rows) == 8 * len(runner.study.versions[0])
    assert len({(r["participant_id"], r["item_id"]) for r in rows}) == len(rows)


@pytest.mark.parametrize("pause", [0.0, 0.02])
def test_sigkill_mid_study_loses_at_most_the_open_question(study_dir, db, pause):
    runner = StudyRunner.open(study_dir, db)
    token = runner.invite(1)[0]
    proc = subprocess.Popen([sys.executable, str(WORKER), str(study_dir), db, "slow", token, str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = 0
    for line in proc.stdout:
        last = int(line.split()[1])
        if last >= 5:
            os.kill(proc.pid, signal.SIGKILL)       # a real kill, mid-study
            break
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    for line in rest.splitlines():
        if line.startswith("answered"):
            last = int(line.split()[1])
    assert last >= 5

    if db.startswith("sqlite"):
        path = db.removeprefix("sqlite:///")
        with sqlite3.connect(path) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runner = StudyRunner.open(study_dir, db)
    p = runner.start(token=token)
    seq = runner.study.versions[p.version]
    with runner.store.transaction() as conn:
        stored = runner.store.answers_of(conn, p.participant_id)
    # every printed answer is there, at most one more (committed but not yet printed), as a prefix
    assert last <= len(stored) <= last + 1
    assert sorted(r["position"] for r in stored.values()) == list(range(len(stored)))
    assert set(stored) == set(seq[: len(stored)])
    item = runner.next_item(p.participant_id)
    assert item.position == len(stored)
    assert _complete(runner, p.participant_id).status == "finished"
    if db.startswith("postgresql"):
        with runner.store.transaction() as conn:
            assert conn.execute(text("select count(*) from answers")).scalar() == len(seq)


def test_store_url_resolution(tmp_path):
    from study.store import open_store, resolve_url
    assert resolve_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'answers.sqlite'}"
    assert resolve_url("x/a.db") == f"sqlite:///{(Path.cwd() / 'x/a.db').resolve()}"
    assert resolve_url("postgresql://u:pw@h:5/db") == "postgresql+psycopg://u:pw@h:5/db"
    assert resolve_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(StudyError, match="only SQLite and PostgreSQL"):
        open_store("mysql://u@h/db")
    with pytest.raises(StudyError) as err:
        open_store("postgresql://u:secretpw@127.0.0.1:1/db")
    assert "cannot open" in str(err.value) and "secretpw" not in str(err.value)


def test_same_prolific_pid_started_concurrently_is_one_participant(study_dir, db):
    runner = StudyRunner.open(study_dir, db)
    got, errors = [], []

    def start():
        try:
            got.append(runner.start(platform="prolific", worker_id="SAMEPID", platform_session_id="s"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not errors, errors
    assert len({p.participant_id for p in got}) == 1 and len(got) == 8
    assert len(runner.store.participants_of(runner.study.id)) == 1


def test_decline_keeps_only_a_refusal(study_dir, db):
    runner = StudyRunner.open(study_dir, db)
    sid = runner.study.id
    (token,) = runner.invite(1)
    out = runner.decline(token=token)                       # an invitation stays usable
    assert (out.status, out.code, out.redirect_url) == ("no_consent", "", None)
    assert [p["status"] for p in runner.store.participants_of(sid)] == ["invited"]
    pro = runner.decline(platform="prolific", worker_id="PID-never-stored")
    code = runner.study.manifest["codes"]["no_consent"]
    assert pro.code == code and pro.redirect_url.endswith("cc=" + code) and "return your submission" in pro.message
    started = runner.start(platform="prolific", worker_id="PID-2")
    assert runner.find(platform="prolific", worker_id="PID-2") == started
    runner.decline(platform="prolific", worker_id="PID-2")   # started, no answer yet: removed
    assert runner.find(platform="prolific", worker_id="PID-2") is None
    p = runner.start(token=token)
    item = runner.next_item(p.participant_id)
    runner.record_answer(p.participant_id, item.item_id, good_answer(runner, item.item_id))
    with pytest.raises(StudyError, match="has answers already"):
        runner.decline(token=token)
    assert len(runner.store.export_rows(sid)) == 1
    assert runner.store.refusal_counts(sid) == {"local": 1, "prolific": 2}
    runner.store.close()
