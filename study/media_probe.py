"""The participant's real path to the media: what a browser on the study link gets.

The launch check (study/launch_check.py) does not guess where the app serves pictures:
Streamlit serves each image of a page under a content-derived URL (`/media/<id>.png`)
that exists only while a browser session shows it. So a headless Chromium opens the
study's media-check page (`?study=ID&media_check=TOKEN`, app/participant.py), which
draws every picture of the study through the very function that draws a question
(`show_png`), and fetches each image URL that page loaded, inside the same session.
The lean participant page (app/lean/, `python -m app serve`) has the same media-check
page in plain HTML (a `figure` per picture, its `figcaption` the file name); both are
read here.
The token is derived from the study's private key, so only someone holding the study
folder can open that page; a participant link never shows more than its own question.

Playwright drives the browser (requirements.txt); the browser is the system Chromium
(`/usr/bin/chromium`, or $PROTOPROTO_CHROMIUM), as in the end-to-end tests.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urljoin

from study.errors import StudyError

CHROMIUM_ENV = "PROTOPROTO_CHROMIUM"
CHROMIUM_DEFAULT = "/usr/bin/chromium"
PARAM = "media_check"
NAME_ATTR = "data-media-name"
# what the page is made of: Streamlit's elements, or the lean page's plain HTML
APP, LEAN_APP = "[data-testid=stApp]", "[data-pp-page]"
ALERT = "[data-testid=stAlert], [data-pp-error]"
IMAGE = "[data-testid=stImage], figure.pp-figure"
IMAGE_IMG = "[data-testid=stImage] img, figure.pp-figure img"   # (IMAGE + " img" would match the containers too)
CAPTION = "[data-testid=stImageCaption], figcaption"


def media_check_token(key_file: Path, study_id: str) -> str:
    """The secret that opens a study's media-check page (from its private key file)."""
    try:
        secret = Path(key_file).read_bytes()
    except OSError as exc:
        raise StudyError(f"{key_file}: not readable ({exc.strerror or exc})") from None
    return hmac.new(secret, f"media-check:{study_id}".encode(), hashlib.sha256).hexdigest()[:32]


def media_check_url(base_url: str, study_id: str, token: str) -> str:
    return base_url.rstrip("/") + "/?" + urlencode({"study": study_id, PARAM: token})


def chromium_path() -> str:
    path = os.environ.get(CHROMIUM_ENV) or CHROMIUM_DEFAULT
    found = shutil.which(path) or (path if Path(path).is_file() else None)
    if not found:
        raise StudyError(f"no Chromium at {path} (install Debian's chromium or set {CHROMIUM_ENV}): "
                         "the participant page's media cannot be checked")
    return found


@dataclass
class Served:
    name: str                 # the study's file, e.g. media/abcd.png
    url: str | None           # what the participant page loaded (None: it showed no such image)
    status: int | None = None
    content_type: str = ""
    body: bytes = b""


def fetch_participant_media(base_url: str, study_id: str, token: str, names: list[str],
                            timeout: float = 30.0) -> tuple[list[Served], str | None]:
    """Open the media-check page in headless Chromium and fetch every image it loaded.

    Returns one `Served` per expected name (in order) and the page's error line, if it
    showed one instead of the pictures."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise StudyError("the Python package playwright is not installed (pip install -r requirements.txt): "
                         "the participant page's media cannot be checked") from None
    executable = chromium_path()
    url = media_check_url(base_url, study_id, token)
    ms = int(timeout * 1000)
    found: dict[str, str] = {}
    page_error = None
    out = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable,
                                         args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.goto(url, timeout=ms)
                try:
                    page.wait_for_selector(f"{APP}, {LEAN_APP}", timeout=min(ms, 15_000), state="attached")
                except PlaywrightTimeout:
                    raise StudyError(f"{url}: no participant page answers there (is `python -m app` "
                                     "or `python -m app serve` serving this study at that address?)") from None
                page.wait_for_selector(f"{ALERT}, [data-media-done]", timeout=ms, state="attached")
                if page.locator("[data-media-done]").count() == 0:
                    page_error = " ".join(page.locator(ALERT).first.inner_text().split())
                else:
                    # every picture drawn (the marker comes last, but the frontend may draw later)
                    page.wait_for_function(
                        "() => { const n = +document.querySelector('[data-media-done]').dataset.mediaDone;"
                        f" const imgs = [...document.querySelectorAll('{IMAGE_IMG}')];"
                        " return imgs.length >= n && imgs.every(i => i.complete); }", timeout=ms)
                    for name, src in page.evaluate(
                            f"() => [...document.querySelectorAll('{IMAGE}')].map(e => ["
                            f"(e.querySelector('{CAPTION}') || {{}}).textContent || '',"
                            " (e.querySelector('img') || {}).src || ''])"):
                        found.setdefault(name.strip(), src)
                for name in names:
                    src = found.get(name)
                    if not src:
                        out.append(Served(name, None))
                        continue
                    absolute = urljoin(url, src)
                    resp = page.request.get(absolute, timeout=ms)
                    out.append(Served(name, absolute, resp.status, resp.headers.get("content-type", ""),
                                      resp.body() if resp.status == 200 else b""))
            finally:
                browser.close()
    except PlaywrightTimeout:
        raise StudyError(f"{url}: the participant page did not show the study's {len(names)} pictures "
                         f"within {timeout:g} s") from None
    except PlaywrightError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"{url}: the participant page could not be opened in Chromium ({first})") from None
    return out, page_error
