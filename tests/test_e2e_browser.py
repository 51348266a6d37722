"""End to end in a real browser: `python -m app` serving a workspace, headless Chromium
clicking through a participant session and the researcher pages.

Screenshots (class page, a question, the analysis page) go to test-artifacts/.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import app_helpers
from servers import CHROMIUM, app_server, chromium

ROOT = Path(__file__).resolve().parent.parent
STUDY = "demo-consistency"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed "
                                "(Debian package chromium; `bash scripts/setup.sh --test` installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = app_helpers.workspace(tmp_path_factory.mktemp("e2e") / "ws")
    log = home.parent / "server.log"
    # no password configured: the launcher generates and prints one
    with app_server(home, log, drop=("PROTOPROTO_DB", "PROTOPROTO_PASSWORD", "PROTOPROTO_BASE_URL")) as url:
        printed = re.search(r"Researcher password \(set PROTOPROTO_PASSWORD to choose your own\): (\S+)",
                            log.read_text())
        assert printed, "the launcher did not print a generated password"
        yield url, home, printed.group(1)


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _stored(home: Path) -> list[dict]:
    from study.folder import open_study
    from study.store import open_store

    store = open_store(None, open_study(home / "studies" / STUDY).root)
    try:
        return store.export_rows(STUDY)
    finally:
        store.close()


def _answer_directly(home: Path, study: str = STUDY) -> None:
    from study.session import StudyRunner

    runner = StudyRunner.open(home / "studies" / study)
    p = runner.start()
    options = list(runner.study.option_values)
    n = 0
    while (item := runner.next_item(p.participant_id)) is not None:
        info = runner.key[item.item_id]
        n += 1
        answer = info.get("expected") or ("A" if "A" in options else options[n % len(options)])
        runner.record_answer(p.participant_id, item.item_id, answer, response_ms=900)
    runner.finish(p.participant_id)
    runner.store.close()


def _settled(page) -> None:
    """Wait until the script run is over: no stale element left from the previous run and
    no running indicator (a click on a stale widget would be dropped by Streamlit)."""
    page.wait_for_function("""() => !document.querySelector('[data-stale="true"]')
        && !document.querySelector('[data-testid^="stStatusWidgetRunning"]')""")


def _button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def test_participant_session_by_clicking(server, browser, artifacts_dir):
    url, home, _ = server
    study = json.loads((home / "studies" / STUDY / "study.json").read_text())
    versions = json.loads((home / "studies" / STUDY / "versions.json").read_text())["versions"]
    items = json.loads((home / "studies" / STUDY / "items.json").read_text())
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(f"{url}?study={STUDY}")
    _button(page, study["wording"]["consent_button"]).wait_for()
    _settled(page)
    _button(page, study["wording"]["consent_button"]).click()
    page.get_by_text(study["wording"]["instructions"][:40]).wait_for()
    _settled(page)
    _button(page, study["wording"]["next_button"]).click()
    labels = {o["value"]: o["label"] for o in study["options"]}
    private = json.loads((home / "studies" / STUDY / "private" / "key.json").read_text())["private_terms"]
    assert private
    total = len(versions[0])
    for n in range(1, total + 1):
        progress = page.get_by_text(f"Question {n} of {total}")
        progress.wait_for()
        _settled(page)
        expected = len(items[versions[0][n - 1]]["media"])  # every image of this question, loaded
        page.wait_for_function("n => { const m = [...document.images].filter(i => i.src.includes('/media/'));"
                               " return m.length >= n && m.every(i => i.complete && i.naturalWidth > 0); }",
                               arg=expected)
        question = page.locator("strong").filter(has_text=re.compile(r"\?|select")).first.inner_text()
        if n == 1:
            page.screenshot(path=str(artifacts_dir / "app_question.png"), full_page=True)
        html = page.content().lower()  # the whole DOM: text, image addresses, alt texts
        assert not [t for t in private if t.lower() in html]
        instructed = re.search(r'select "([^"]+)"', question)
        label = instructed.group(1) if instructed else labels["A"]
        _button(page, label).click()
        if n < total:  # the next question appears only after the answer is stored
            page.get_by_text(f"Question {n + 1} of {total}").wait_for()
            assert len(_stored(home)) == n
    page.get_by_text(study["codes"]["completion"]).wait_for()
    token = re.search(r"token=([^&]+)", page.url).group(1)
    rows = _stored(home)
    assert len(rows) == total and {r["status"] for r in rows} == {"finished"}
    assert [r["item_id"] for r in sorted(rows, key=lambda r: r["position"])] == versions[0]
    # nothing on the page names a method or a pair source
    body = page.inner_text("body").lower()
    key = json.loads((home / "studies" / STUDY / "private" / "key.json").read_text())
    assert not [t for t in key["private_terms"] if t.lower() in body]
    # reloading the finished link shows the code again and stores nothing new
    page.goto(f"{url}?study={STUDY}&token={token}")
    page.get_by_text(study["codes"]["completion"]).wait_for()
    assert len(_stored(home)) == total
    page.close()


def test_researcher_pages_by_clicking(server, browser, artifacts_dir):
    url, home, password = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)   # Streamlit reruns take long on a loaded 2-core machine
    page.goto(url)
    page.get_by_label("Password", exact=True).fill("wrong")
    _button(page, "Sign in").click()
    page.get_by_text("Wrong password.").wait_for()
    page.get_by_label("Password", exact=True).fill(password)
    _button(page, "Sign in").click()
    page.get_by_role("heading", name="Models", exact=True).wait_for()
    atlas = json.loads((home / "atlases" / "protopool-birds" / "atlas.json").read_text())
    first = atlas["dataset"]["class_names"][0]
    page.get_by_text(re.compile(rf"^{re.escape(first)}: \d+ prototypes$")).wait_for()
    page.wait_for_function("() => [...document.images].length > 4 && [...document.images]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(artifacts_dir / "app_class_page.png"), full_page=True)

    # Explain an image: an upload checked by content, then explained
    page.get_by_test_id("stSidebar").get_by_text("Explain an image", exact=True).click()
    page.get_by_role("heading", name="Explain an image", exact=True).wait_for()
    _settled(page)
    page.get_by_text("Upload", exact=True).click()
    bad = home.parent / "notes.png"
    bad.write_text("these are notes, not an image")
    page.locator("input[type=file]").set_input_files(str(bad))
    page.get_by_text("notes.png: not a readable PNG or JPEG image").wait_for()
    good = home.parent / "bird.jpg"
    good.write_bytes(next((home / "data" / "synthetic-birds" / "CUB_200_2011" / "images").rglob("*.jpg")).read_bytes())
    page.locator("input[type=file]").set_input_files(str(good))
    page.get_by_text("Prediction", exact=True).wait_for()
    page.get_by_text(re.compile(r"= sum of \d+ contributions")).first.wait_for()

    if not any(r["status"] == "finished" for r in _stored(home)):  # this test run alone: answers through the runner the app uses
        _answer_directly(home)
    page.get_by_test_id("stSidebar").get_by_text("Analysis", exact=True).click()
    page.get_by_role("heading", name="Analysis", exact=True).wait_for()
    page.get_by_text("Consistency choices", exact=True).wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_role("button", name="Download the report (HTML)").wait_for()
    page.wait_for_timeout(500)
    page.set_viewport_size({"width": 1300, "height": 1000})
    _assert_tables_fit(page)
    page.screenshot(path=str(artifacts_dir / "app_analysis_page.png"), full_page=True)

    # the saliency study's tables are the widest (Mann-Whitney, Wilcoxon, CLMM contrasts)
    for _ in range(2):
        _answer_directly(home, "demo-saliency")
    page.get_by_test_id("stSelectbox").filter(has_text="Study").click()
    page.get_by_role("option", name="demo-saliency").click()
    page.locator(".pp-report h3", has_text="Answer-level test").wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").first.wait_for()
    _settled(page)
    page.wait_for_timeout(500)
    _assert_tables_fit(page)
    page.locator(".pp-report").screenshot(path=str(artifacts_dir / "app_analysis_saliency.png"))
    page.close()


def _assert_tables_fit(page) -> None:
    """At a 1300 px wide window no table of the analysis page scrolls sideways: every
    table is as wide as its frame at most, and so is the page."""
    widths = page.evaluate("""() => {
        const over = e => e.scrollWidth > e.clientWidth + 1;
        const frames = [...document.querySelectorAll('.pp-report .tw, [data-testid="stTable"]')];
        return {frames: frames.length,
                wide: frames.filter(over).map(e => [e.textContent.slice(0, 60), e.scrollWidth, e.clientWidth]),
                tables: [...document.querySelectorAll('.pp-report table')].length,
                page: [document.documentElement.scrollWidth, document.documentElement.clientWidth]};
    }""")
    assert widths["tables"] >= 2, widths
    assert not widths["wide"], widths
    assert widths["page"][0] <= widths["page"][1], widths


def test_launch_check_goes_through_the_participant_page(server, browser, tmp_path):
    """`python -m study check --base-url` and the Launch checklist page fetch every picture
    the way a participant's browser gets it from the running app: the untouched demo study
    is ready; a media file changed after the build fails by name."""
    import shutil

    url, home, password = server
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def check(study: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "study", "check", str(home / "studies" / study),
                               "--base-url", url], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=180)

    run = check("demo-saliency")
    n = len({m for i in json.loads((home / "studies" / "demo-saliency" / "items.json").read_text()).values()
             for m in i["media"]})
    assert run.returncode == 0, run.stdout[:1500] + run.stderr
    assert f"[ok] media: {n} of {n} media files served by the participant page at {url}" in run.stdout
    assert run.stdout.splitlines()[-1].startswith("ready")

    shutil.copytree(home / "studies" / "demo-saliency", home / "studies" / "check-copy")
    victim = sorted((home / "studies" / "check-copy" / "media").iterdir())[1]
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0xFF
    victim.write_bytes(bytes(data))
    run = check("check-copy")
    assert run.returncode == 1 and "NOT READY: media failed" in run.stdout
    assert f"{victim}: changed since the build" in run.stdout

    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(url)
    page.get_by_label("Password", exact=True).fill(password)
    _button(page, "Sign in").click()
    page.get_by_role("heading", name="Models", exact=True).wait_for()
    page.get_by_test_id("stSidebar").get_by_text("Launch checklist", exact=True).click()
    page.get_by_role("heading", name="Launch checklist", exact=True).wait_for()
    _settled(page)
    page.get_by_test_id("stSelectbox").filter(has_text="Study").click()
    page.get_by_role("option", name="demo-saliency").click()
    _settled(page)
    _button(page, "Run the checks").click()
    page.get_by_text("Ready: no check failed.").wait_for(timeout=120_000)
    page.get_by_text(f"{n} of {n} media files served by the participant page").wait_for()
    page.get_by_test_id("stSelectbox").filter(has_text="Study").click()
    page.get_by_role("option", name="check-copy").click()
    _settled(page)
    _button(page, "Run the checks").click()
    page.get_by_text("Not ready: media failed.").wait_for(timeout=120_000)
    page.get_by_text(f"{victim}: changed since the build", exact=False).wait_for()
    page.close()
    shutil.rmtree(home / "studies" / "check-copy")


def _first_question(browser, url: str, study: str, width: int):
    """A new participant at the first question, in a window `width` px wide and 900 high."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(f"{url}?study={study}")
    for key in ("consent", "instructions"):
        button = page.locator(f".st-key-{key} button")
        button.wait_for()
        _settled(page)
        button.click()
    page.get_by_text(re.compile(r"^Question 1 of \d+$")).wait_for()
    _settled(page)
    page.wait_for_function("() => { const m = [...document.images].filter(i => i.src.includes('/media/'));"
                           " return m.length > 0 && m.every(i => i.complete && i.naturalWidth > 0); }")
    return page


def _boxes(page) -> list[dict]:
    return page.evaluate("""() => [...document.images].filter(i => i.src.includes('/media/')).map(i => {
        const r = i.getBoundingClientRect();
        return {x: r.x, y: r.y, w: r.width, h: r.height, nw: i.naturalWidth, nh: i.naturalHeight}; })""")


def _overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


@pytest.mark.parametrize("width", [1300, 800])
def test_stimuli_render_at_a_size_that_serves_judgment(server, browser, artifacts_dir, width):
    """Measured from the rendered image boxes: at a 1300 x 900 window each half of a
    side-by-side saliency stimulus is at least 448 CSS px wide and each consistency tile at
    least 160 (their native sizes); at 800 px both are scaled down by one factor, the
    window's. The image's fullscreen button covers neither the progress bar nor an answer."""
    from study.media import GAP

    url, home, _ = server
    spec = {"saliency": 448, "consistency": 160}
    for study, native in (("demo-saliency", spec["saliency"]), ("demo-consistency", spec["consistency"])):
        page = _first_question(browser, url, study, width)
        boxes = _boxes(page)
        page.screenshot(path=str(artifacts_dir / f"participant_{study}_{width}.png"), full_page=True)
        assert boxes and all(abs(b["w"] / b["nw"] - b["h"] / b["nh"]) < 0.01 for b in boxes), boxes
        scale = min(b["w"] / b["nw"] for b in boxes)
        if study == "demo-saliency":       # one PNG: photograph | gap | photograph with the map
            (box,) = boxes
            assert box["nw"] == 2 * native + GAP
            shown = (box["w"] - GAP * scale) / 2
        else:                              # two PNGs of 3 tiles each (160 px, 8 px gaps)
            assert len(boxes) == 2 and {b["nw"] for b in boxes} == {3 * native + 2 * GAP}
            shown = native * scale
        if width >= 1300:
            assert shown >= native, (study, shown, boxes)
        else:                              # scaled down with the window, not cropped
            assert 0.5 < scale < 1 and shown < native, (study, shown, boxes)
        page.locator("[data-testid=stImage]").first.hover()
        toolbar = page.get_by_test_id("stElementToolbar").first
        toolbar.wait_for()
        bar = toolbar.bounding_box()
        others = [page.get_by_test_id("stProgress").bounding_box()]
        others += [page.locator(".st-key-answer-" + v + " button").first.bounding_box()
                   for v in page.evaluate("() => [...document.querySelectorAll('[class*=st-key-answer-]')]"
                                          ".map(e => [...e.classList].find(c => c.startsWith('st-key-answer-'))"
                                          ".split('-').slice(3).join('-'))")]
        assert len([o for o in others if o]) >= 3 and not [o for o in others if o and _overlaps(bar, o)], \
            (bar, others)
        page.close()
