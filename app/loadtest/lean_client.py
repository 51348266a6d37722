"""A simulated participant on the lean page (app/lean/): the requests a browser sends.

GET the link, the pictures; POST "I agree", follow the redirect; GET the instructions'
"Next" form; per question: think, POST the answer form, follow the redirect to the next
page and GET its pictures (click -> next question = from the POST to the last picture);
the completion page's code ends it. With `double_click` a click is sometimes sent twice
at once on two connections (a double click, or a browser retrying a POST).
"""
from __future__ import annotations

import asyncio
import random
import time
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

from app.loadtest.common import Pace, Record, choose, server_timing
from app.loadtest.http import Connection


class PageParser(HTMLParser):
    """The parts of a lean page a participant acts on."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.images: list[str] = []
        self.question = ""
        self.code = ""
        self.error = ""
        self._in: str | None = None
        self._end = ""
        self._button: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"method": (a.get("method") or "get").lower(), "action": a.get("action") or "",
                               "item": a.get("data-pp-item"), "hidden": {}, "buttons": []})
        elif tag == "input" and a.get("type") == "hidden" and self.forms:
            self.forms[-1]["hidden"][a.get("name")] = a.get("value") or ""
        elif tag == "button" and self.forms:
            self._button = {"name": a.get("name"), "value": a.get("value") or "", "label": ""}
            self.forms[-1]["buttons"].append(self._button)
        elif tag == "img" and a.get("src"):
            self.images.append(a["src"])
        elif tag == "p" and a.get("class") == "pp-question":
            self._in, self._end = "question", "p"
        elif "data-pp-code" in a:
            self._in, self._end = "code", tag
        elif "data-pp-error" in a:
            self._in, self._end = "error", tag

    def handle_endtag(self, tag):
        if tag == "button":
            self._button = None
        if self._in is not None and tag == self._end:
            self._in = None

    def handle_data(self, data):
        if self._button is not None:
            self._button["label"] += data
        if self._in == "question":
            self.question += data
        elif self._in == "code":
            self.code += data
        elif self._in == "error":
            self.error += data


def parse(body: bytes) -> PageParser:
    parser = PageParser()
    parser.feed(body.decode("utf-8", "replace"))
    return parser


class LeanParticipant:
    def __init__(self, host: str, port: int, link: str, worker_id: str, pace: Pace, rng: random.Random,
                 double_click: float = 0.0, timeout: float = 60.0):
        self.host, self.port, self.link = host, port, link
        self.pace, self.rng, self.double_click = pace, rng, double_click
        self.conn = Connection(host, port, timeout)
        self.record = Record(worker_id)
        self.url = link
        self.last_phases: dict[str, float] = {}

    async def _load(self, method: str, url: str, data: dict | None = None, conn: Connection | None = None):
        """A navigation: the request, its redirects, then the page's pictures."""
        conn = conn or self.conn
        phases: dict[str, float] = {}

        def add(name: str, seconds: float) -> None:
            phases[name] = phases.get(name, 0.0) + seconds

        body = urlencode(data or {}).encode() if method == "POST" else b""
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if method == "POST" else {}
        path = urlsplit(url).path + (f"?{urlsplit(url).query}" if urlsplit(url).query else "")
        for _ in range(5):
            t0 = time.perf_counter()
            status, head, payload = await conn.request(method, path, body, headers)
            step = "answer" if method == "POST" else "page"
            add(step, time.perf_counter() - t0)
            for name, seconds in server_timing(head.get("server-timing", "")).items():
                add(f"{step}.server_{name}", seconds)
            if status in (301, 302, 303, 307, 308) and "location" in head:
                url = urljoin(url, head["location"])
                path = urlsplit(url).path + (f"?{urlsplit(url).query}" if urlsplit(url).query else "")
                method, body, headers = "GET", b"", {}
                continue
            break
        page = parse(payload)
        if status != 200:
            raise RuntimeError(f"HTTP {status} at {path}: {' '.join(page.error.split()) or payload[:120]!r}")
        t0 = time.perf_counter()
        for src in page.images:
            s, _, _ = await conn.request("GET", urlsplit(urljoin(url, src)).path)
            if s != 200:
                raise RuntimeError(f"HTTP {s} for picture {src}")
        add("pictures", time.perf_counter() - t0)
        self.url = url
        self.last_phases = phases
        return page

    async def run(self) -> Record:
        rec = self.record
        try:
            page = await self._load("GET", self.link)
            await self.pace.think(self.rng)
            page = await self._load("POST", self.url, {"consent": "agree"})
            form = page.forms[0]                       # instructions: "Next"
            await self.pace.think(self.rng)
            target = urlsplit(urljoin(self.url, form["action"]))      # a GET form: its fields are the query
            page = await self._load("GET", f"{target.scheme}://{target.netloc}{target.path}?{urlencode(form['hidden'])}")
            while True:
                if page.code:
                    rec.finished, rec.code = True, page.code.strip()
                    break
                form = next((f for f in page.forms if f["item"]), None)
                if form is None:
                    raise RuntimeError(f"neither a question nor a code: {page.error.strip() or 'unknown page'}")
                options = [(b["label"].strip(), b["value"]) for b in form["buttons"]]
                value = choose(page.question, options, self.rng)
                await self.pace.think(self.rng)
                data = {**form["hidden"], "value": value}
                action = urljoin(self.url, form["action"])
                t0 = time.perf_counter()
                if self.rng.random() < self.double_click:
                    rec.double_clicks += 1
                    extra = Connection(self.host, self.port, self.conn.timeout)
                    try:
                        page, _ = await asyncio.gather(self._load("POST", action, data),
                                                       self._load("POST", action, data, conn=extra))
                    finally:
                        await extra.close()
                else:
                    page = await self._load("POST", action, data)
                rec.clicks.append(time.perf_counter() - t0)
                rec.phases.append(self.last_phases)
                if page.code or any(f["item"] and f["item"] != form["item"] for f in page.forms):
                    rec.acked.append(form["item"])
        except Exception as exc:  # noqa: BLE001 - the run goes on; the record says what happened
            rec.error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            await self.conn.close()
        return rec
