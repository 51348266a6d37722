"""The lean participant page (app/lean/): a real server process, real HTTP, headless Chromium.

Two participants go through it in Chromium (a Prolific link and an open link that gets
its token and resumes after a reload); an answer POST sent twice stores one answer;
media are the study's bytes and nothing else; the launch check's media probe reads its
media-check page; every text is escaped; a busy port is one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import crowd_helpers
from servers import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
STUDY = crowd_helpers.STUDY


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def request(url: str, data: dict | None = None) -> tuple[int, object, bytes]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with OPENER.open(urllib.request.Request(url, data=body), timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.fixture(scope="module")
def lean(tmp_path_factory):
    home = crowd_helpers.workspace(tmp_path_factory.mktemp("lean") / "ws", items=1)
    port = free_port()
    env = dict(os.environ, PROTOPROTO_HOME=str(home), PYTHONPATH=str(ROOT))
    env.pop("PROTOPROTO_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "app", "lean", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            if request(base + "healthz")[0] == 200:
                break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "the lean server did not start"
        time.sleep(0.2)
    yield home, base, port
    proc.terminate()
    proc.wait(10)


def stored(home: Path) -> list[dict]:
    from study.store import open_store

    store = open_store(None, home / "studies" / STUDY)
    try:
        return store.export_rows(STUDY)
    finally:
        store.close()


def key_items(home: Path) -> dict:
    return json.loads((home / "studies" / STUDY / "private" / "key.json").read_text())["items"]


def test_double_post_stores_one_answer_and_pages_follow_the_store(lean):
    home, base, _ = lean
    link = base + "?" + urllib.parse.urlencode({"study": STUDY, "PROLIFIC_PID": "dbl-0001", "STUDY_ID": "s",
                                                "SESSION_ID": "x"})
    status, _, page = request(link)
    assert status == 200 and b'name="consent" value="agree"' in page
    assert not [r for r in stored(home) if r["worker_id"] == "dbl-0001"]        # nothing before "I agree"
    status, headers, _ = request(link, {"consent": "agree"})
    assert status == 303 and "step=instructions" in headers["location"]
    status, _, page = request(link + "&step=questions")
    from app.loadtest.lean_client import parse

    form = next(f for f in parse(page).forms if f["item"])
    data = {**form["hidden"], "value": form["buttons"][0]["value"]}
    first, second = request(link, data), request(link, data)
    assert first[0] == 303 and second[0] == 303                                    # a replay is no error
    rows = [r for r in stored(home) if r["worker_id"] == "dbl-0001"]
    assert [r["item_id"] for r in rows] == [form["item"]]                          # one answer
    assert rows[0]["response_ms"] is not None and rows[0]["response_ms"] >= 0
    status, _, page = request(link)                                                # resumes at the next one
    nxt = next(f for f in parse(page).forms if f["item"])
    assert nxt["item"] != form["item"]
    assert b"Question 2 of" in page


def test_media_are_the_study_bytes_and_nothing_else(lean):
    home, base, _ = lean
    from study.folder import open_study

    build = open_study(home / "studies" / STUDY).fingerprint[:16]
    media = sorted((home / "studies" / STUDY / "media").iterdir())
    status, headers, body = request(f"{base}media/{STUDY}/{build}/{media[0].name}")
    assert status == 200 and headers["Content-Type"] == "image/png" and body == media[0].read_bytes()
    for bad in ("study.json", "..%2Fstudy.json", "..%2Fprivate%2Fkey.json", media[0].stem + ".PNG", "x.png"):
        assert request(f"{base}media/{STUDY}/{build}/{bad}")[0] == 404, bad
    assert request(f"{base}media/{STUDY}/{'0' * 16}/{media[0].name}")[0] == 404        # another build
    assert request(f"{base}media/no-such-study/{build}/{media[0].name}")[0] == 404
    status, headers, page = request(base + "?study=no-such-study")
    assert status == 400 and b"This study link is not valid." in page
    assert "script-src" not in headers["Content-Security-Policy"] and headers["Referrer-Policy"] == "no-referrer"


def test_decline_keeps_only_a_refusal(lean):
    home, base, _ = lean
    link = base + "?" + urllib.parse.urlencode({"study": STUDY, "PROLIFIC_PID": "no-0001"})
    status, _, page = request(link, {"consent": "decline"})
    assert status == 200 and b"did not agree" in page
    assert b"Return to Prolific" in page and b"return your submission" in page
    from study.store import open_store

    store = open_store(None, home / "studies" / STUDY)
    try:
        assert store.refusal_counts(STUDY).get("prolific", 0) >= 1
        assert not [p for p in store.participants_of(STUDY) if p["worker_id"] == "no-0001"]
    finally:
        store.close()


def test_every_text_is_escaped():
    from app.lean import pages
    from study.session import ItemView

    item = ItemView("i1", 0, 3, 'Pick <b>"x"</b> & go', [Path("/nope.png")], ["<img src=x onerror=alert(1)>"])
    html = pages.question(item, [{"label": "<script>alert(1)</script>", "value": '1"><x'}],
                          [("media/s/a.png", (10, 10))], "?study=s&token=<t>", {"item": "i1"})
    assert "<script>" not in html and "<b>" not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;" in html and "&amp;" in html and 'value="1&quot;&gt;&lt;x"' in html
    assert pages.paragraphs("a <i>\n\nb") == "<p>a &lt;i&gt;</p><p>b</p>"


def test_launch_check_reads_the_lean_media_check_page(lean):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (bash scripts/setup.sh)")
    home, base, _ = lean
    from study.folder import open_study
    from study.launch_check import check_media

    check = check_media(open_study(home / "studies" / STUDY), base, timeout=60)
    assert check.ok, check.problems
    assert "of" in check.summary and "served by the participant page" in check.summary


def test_second_start_on_a_busy_port_is_one_line(lean):
    _, _, port = lean
    result = subprocess.run([sys.executable, "-m", "app", "lean", "--port", str(port)], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use (is the app already running? stop it or choose "
        "another --port)"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (bash scripts/setup.sh)")
def test_two_participants_in_chromium(lean):
    """A Prolific participant and an open-link participant, each to the completion code;
    pictures at their native size; the open link's token resumes after a reload."""
    from playwright.sync_api import sync_playwright

    home, base, _ = lean
    expected = {item: info.get("expected") for item, info in key_items(home).items()}
    links = {"prolific": base + "?" + urllib.parse.urlencode({"study": STUDY, "PROLIFIC_PID": "pw-0001",
                                                                "STUDY_ID": "st", "SESSION_ID": "se"}),
             "open": base + "?" + urllib.parse.urlencode({"study": STUDY})}
    codes = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            for name, link in links.items():
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                page.goto(link)
                page.get_by_role("button", name="I agree, start the study").click()
                page.wait_for_selector("[data-pp-next]")
                if name == "open":
                    assert "token=" in page.url                    # the open link now carries its token
                page.click("[data-pp-next]")
                answered = 0
                while page.locator("[data-pp-code]").count() == 0:
                    form = page.locator("form[data-pp-item]")
                    item = form.get_attribute("data-pp-item")
                    sizes = page.evaluate("() => [...document.querySelectorAll('.pp-media img')].map("
                                          "i => [i.naturalWidth, i.getBoundingClientRect().width, i.complete])")
                    assert sizes and all(done and abs(natural - shown) < 1 for natural, shown, done in sizes), sizes
                    value = expected.get(item) or form.locator("button").first.get_attribute("value")
                    form.locator(f"button[value='{value}']").click()
                    page.wait_for_load_state()
                    answered += 1
                    if name == "open" and answered == 2:
                        page.reload()                              # resumes at the next unanswered question
                        assert page.locator("form[data-pp-item]").get_attribute("data-pp-item") != item
                codes[name] = page.locator("[data-pp-code]").inner_text()
                if name == "prolific":
                    href = page.locator("[data-pp-redirect]").get_attribute("href")
                    assert href == "https://app.prolific.com/submissions/complete?cc=" + codes[name]
                page.close()
        finally:
            browser.close()
    manifest = json.loads((home / "studies" / STUDY / "study.json").read_text())
    assert codes == {"prolific": manifest["codes"]["completion"], "open": manifest["codes"]["completion"]}
    rows = stored(home)
    people = {r["participant_id"] for r in rows if r["worker_id"] == "pw-0001" or r["platform"] == "local"}
    assert len(people) == 2
    for pid in people:
        mine = [r for r in rows if r["participant_id"] == pid]
        assert len(mine) == len({r["item_id"] for r in mine}) == answered
        assert all(r["status"] == "finished" for r in mine)
