"""`python -m study check` and the app's launch checklist, against a local http.server on 127.0.0.1."""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from study.build import build_study
from study.folder import open_study
from study.launch_check import check_blinding, check_codes, check_links, check_mturk, run_checks
from study.platforms.mturk_export import MAX_QUESTION_BYTES, export_mturk
from study_helpers import make_saliency_setup

REPO = Path(__file__).resolve().parent.parent


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class NoHead(Quiet):
    def do_HEAD(self):                     # some hosts refuse HEAD; the check then decides by GET
        self.send_error(405)


@contextlib.contextmanager
def serving(folder: Path, handler=Quiet):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def small_study(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("check")
    spec = make_saliency_setup(tmp, n_images=10, datasets=("birds",), pool_size=4, items_per_version=2,
                               versions=2, size=64, attention={"count": 1, "max_failures": 0})
    return build_study(spec, tmp / "studies" / "check-study")


def site_for(study_dir: Path, dest: Path) -> Path:
    """What a researcher hosts: the app's address answers, media/ holds the study's images."""
    shutil.copytree(study_dir / "media", dest / "media")
    return dest


def study_cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "study", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_passes_and_prints_what_participants_see(small_study, tmp_path):
    """Without the app's address the participant page is not opened (tests/test_e2e_browser.py
    checks it against the running app); the Mechanical Turk media host is."""
    study = open_study(small_study)
    site = site_for(small_study, tmp_path / "site")
    with serving(site) as base:
        run = study_cli("check", small_study, "--media-url", base + "media/", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for name in ("codes", "mturk-media", "attention", "mturk", "blinding"):
        assert f"[ok] {name}:" in out, name
    assert "[skip] media:" in out and "the participant page not checked" in out
    n_media = len({m for i in study.items.values() for m in i["media"]})
    assert f"{n_media} of {n_media} media files served at {base}media/ (Mechanical Turk)" in out
    codes = study.manifest["codes"]
    assert all(code in out for code in codes.values()) and len(codes) == 3
    w = study.wording
    for text in (w["consent"], w["consent_button"], "I do not agree", w["instructions"], w["question"],
                 w["no_consent_message"], "return your submission on Prolific", "return this HIT"):
        assert text in out, text
    assert "Mechanical Turk documentation" in out and "21 November 2026" in out     # status with its source
    assert "ready" in out.splitlines()[-1]


def test_check_names_each_broken_media_url(small_study, tmp_path):
    site = site_for(small_study, tmp_path / "site")
    victims = sorted((site / "media").iterdir())
    victims[0].unlink()
    victims[1].write_bytes(victims[1].read_bytes()[:-1] + b"x")      # same size, other bytes
    victims[2].write_bytes(b"short")
    with serving(site) as base:
        run = study_cli("check", small_study, "--media-url", base + "media/", cwd=tmp_path)
    assert run.returncode == 1
    out = run.stdout
    assert "[FAIL] mturk-media:" in out and "NOT READY: mturk-media failed" in out
    assert f"{base}media/{victims[0].name}: HTTP 404" in out
    assert f"{base}media/{victims[1].name}: content differs from the study's file" in out
    assert f"{base}media/{victims[2].name}: 5 bytes served" in out
    assert "[skip] links:" in out                     # no --base-url: links are not requested


def test_media_check_falls_back_to_get_where_head_is_refused(small_study, tmp_path):
    site = site_for(small_study, tmp_path / "site")
    with serving(site, NoHead) as base:
        checks = {c.name: c for c in run_checks(open_study(small_study), None, base + "media/", timeout=5)}
    assert checks["mturk-media"].ok, checks["mturk-media"].problems


def test_a_changed_media_file_fails_naming_it(small_study, tmp_path):
    """study.json records each file's SHA-256: a file changed after the build fails the
    media check by name; a study built before that record is checked by decoding."""
    copy = tmp_path / "studies" / "changed"
    shutil.copytree(small_study, copy)
    victim = sorted((copy / "media").iterdir())[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    check = {c.name: c for c in run_checks(open_study(copy))}["media"]
    assert check.ok is False and len(check.problems) == 1
    assert check.problems[0] == (f"{victim}: changed since the build (its SHA-256 differs from study.json's "
                                 "media_sha256); rebuild the study")
    manifest = json.loads((copy / "study.json").read_text())
    assert set(manifest.pop("media_sha256")) == {m for i in open_study(small_study).items.values() for m in i["media"]}
    (copy / "study.json").write_text(json.dumps(manifest))
    victim.write_bytes(bytes(data[: len(data) // 2]))             # truncated: a PNG header, no image
    check = {c.name: c for c in run_checks(open_study(copy))}["media"]
    assert check.ok is False and check.problems[0].startswith(f"{victim}: not a readable image (")


def test_participant_page_check_names_a_server_that_is_not_the_app(small_study, tmp_path):
    """--base-url at something that is not the app: one line saying so, not a 30 s wait."""
    pytest.importorskip("playwright")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is not installed")
    from study.launch_check import check_media

    with serving(tmp_path) as base:
        check = check_media(open_study(small_study), base, timeout=20)
    assert check.ok is False and len(check.problems) == 1
    assert "no participant page answers there" in check.problems[0], check.problems


def test_links_check_refuses_plain_http_and_a_dead_app(small_study, tmp_path):
    study = open_study(small_study)
    check = check_links(study, "http://participants.example.org/")
    assert check.ok is False and "plain HTTP" in check.problems[0]
    with serving(tmp_path) as base:
        pass                                       # the port is closed again: nothing answers there
    check = check_links(study, base, timeout=3)
    assert check.ok is False and "unreachable" in check.problems[0]


def test_codes_attention_and_blinding_failures(tmp_path):
    spec = make_saliency_setup(tmp_path, n_images=10, datasets=("birds",), pool_size=4, items_per_version=2,
                               versions=2, size=64, attention={"count": 0})
    folder = build_study(spec, tmp_path / "studies" / "bare")
    manifest = json.loads((folder / "study.json").read_text())
    manifest["codes"].pop("no_consent")                   # a study built before the no-consent code
    terms = json.loads((folder / "private" / "key.json").read_text())["private_terms"]
    manifest["wording"]["title"] = f"Rate the maps of {terms[0]}"
    (folder / "study.json").write_text(json.dumps(manifest))
    study = open_study(folder)
    checks = {c.name: c for c in run_checks(study)}
    assert checks["codes"].ok is False and "codes.no_consent is missing" in checks["codes"].problems[0]
    assert checks["attention"].ok is False and "no attention checks" in checks["attention"].problems[0]
    assert checks["blinding"].ok is False and "wording.title contains the private term" in checks["blinding"].problems[0]
    assert check_codes(open_study(tmp_path / "studies" / "bare")).ok is False
    assert checks["links"].ok is None and checks["media"].ok is None
    assert check_blinding(study).problems == checks["blinding"].problems


def test_mturk_size_check_matches_the_export(small_study, tmp_path):
    study = open_study(small_study)
    check = check_mturk(study, "https://media.example.org/s/")
    out = export_mturk(study, "https://media.example.org/s/", tmp_path / "batch")
    largest = max(p.stat().st_size for p in (out / "hits").iterdir())
    assert check.ok and f"largest HTMLQuestion {largest} of {MAX_QUESTION_BYTES} bytes" in check.summary
    long_question = make_saliency_setup(tmp_path / "long", n_images=10, datasets=("birds",), pool_size=8,
                                        items_per_version=8, versions=1, size=48,
                                        wording={"question": "How salient is it? " * 450})
    big = open_study(build_study(long_question, tmp_path / "long" / "studies" / "long"))
    check = check_mturk(big, None)
    assert check.ok is False and "over MTurk's limit of 65535" in check.problems[0]


def test_checklist_page_in_the_app(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    import app_helpers

    home = app_helpers.workspace(tmp_path / "ws")
    monkeypatch.setenv("PROTOPROTO_HOME", str(home))
    monkeypatch.setenv("PROTOPROTO_PASSWORD", app_helpers.PASSWORD)
    monkeypatch.delenv("PROTOPROTO_DB", raising=False)
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=60)
    at.run()
    at.text_input(key="password").input(app_helpers.PASSWORD)
    at.button[0].click().run()
    at.sidebar.radio(key="page").set_value("Launch checklist").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="check_study").set_value("demo-saliency").run()
    preview = at.code[0].value
    study = open_study(home / "studies" / "demo-saliency")
    assert study.wording["consent"] in preview and study.manifest["codes"]["completion"] in preview
    site = site_for(study.root, tmp_path / "site")
    with serving(site) as base:      # the participant page itself: tests/test_e2e_browser.py (a real server)
        at.text_input(key="check_base").input("").run()
        at.text_input(key="check_media").input(base + "media/").run()
        at.button(key="check_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.success][0] == "Ready: no check failed."
    assert any(s.value.startswith("**mturk-media**") for s in at.success)
    (site / "media" / sorted(os.listdir(site / "media"))[0]).unlink()
    with serving(site) as other:
        at.text_input(key="check_media").input(other + "media/").run()
        at.button(key="check_run").click().run()
    assert at.error[0].value == "Not ready: mturk-media failed."
    assert "HTTP 404" in "\n".join(m.value for m in at.markdown)
