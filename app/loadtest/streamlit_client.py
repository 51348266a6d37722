"""A simulated participant on the Streamlit participant page: Streamlit's own protocol.

What the browser does, message for message (streamlit/proto, Streamlit 1.6x): GET the
page, open the websocket `/_stcore/stream` (subprotocol "streamlit"), send a `BackMsg`
`rerun_script` with the link's query string, read `ForwardMsg`s (`new_session` starts a
script run, `delta`s carry its elements, `page_info_changed` a new query string,
`script_finished` ends it; a run ended by `st.rerun` is followed by the next), then GET
the pictures the run showed (`/media/...`). A click is a `rerun_script` whose widget
states hold the clicked button's trigger (its element id: `$$ID-<hash>-<key>`, the key
naming the item and the value: app/participant.py). Click -> next question: from sending
that message to the end of the run showing the next question and its pictures.
"""
from __future__ import annotations

import asyncio
import random
import re
import time
from urllib.parse import urljoin, urlsplit

from app.loadtest.common import Pace, Record, choose
from app.loadtest.http import Connection

CODE = re.compile(r"completion code: \*\*([^*]+)\*\*", re.IGNORECASE)
FINISHED_SUCCESSFULLY = 0


class Run:
    """The elements of the last complete script run."""

    def __init__(self):
        self.buttons: list[tuple[str, str]] = []    # (element id, label)
        self.images: list[str] = []
        self.markdown: list[str] = []
        self.errors: list[str] = []

    @staticmethod
    def key(element_id: str) -> str:
        """The widget's user key: element ids are `$$ID-<hash>-<key>`."""
        parts = element_id.split("-", 2)
        return parts[2] if len(parts) == 3 else element_id

    def button(self, key: str) -> str | None:
        return next((i for i, _ in self.buttons if self.key(i) == key), None)

    def answers(self) -> list[tuple[str, str, str]]:
        """(element id, item id, value) of the answer buttons shown."""
        out = []
        for element_id, _label in self.buttons:
            key = self.key(element_id)
            if key.startswith("answer-"):
                _, item, value = key.split("-", 2)
                out.append((element_id, item, value))
        return out

    @property
    def code(self) -> str:
        for body in self.markdown:
            found = CODE.search(body)
            if found:
                return found.group(1)
        return ""

    @property
    def question(self) -> str:
        bold = [m.strip("* ") for m in self.markdown if m.startswith("**") and "code" not in m]
        return bold[-1] if bold else ""


class StreamlitParticipant:
    def __init__(self, host: str, port: int, link: str, worker_id: str, pace: Pace, rng: random.Random,
                 double_click: float = 0.0, timeout: float = 60.0):
        parts = urlsplit(link)
        self.host, self.port, self.path = host, port, parts.path or "/"
        self.query = parts.query
        self.pace, self.rng, self.double_click, self.timeout = pace, rng, double_click, timeout
        self.http = Connection(host, port, timeout)
        self.record = Record(worker_id)
        self.ws = None
        self.page_hash = ""
        self.last_phases: dict[str, float] = {}

    async def _send(self, widgets: list[tuple[str, bool]]) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_script_hash = self.page_hash
        for element_id, trigger in widgets:
            w = state.widget_states.widgets.add()
            w.id = element_id
            w.trigger_value = trigger
        await self.ws.send(msg.SerializeToString())

    async def _until_done(self) -> Run:
        """Messages up to the end of a successful run; its elements, then its pictures."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        run = Run()
        t0 = time.perf_counter()
        phases = self.last_phases = {}
        runs = 0
        while True:
            data = await asyncio.wait_for(self.ws.recv(), self.timeout)
            msg = ForwardMsg()
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                run = Run()
                runs += 1
                phases.setdefault("run_started", time.perf_counter() - t0)
                self.page_hash = msg.new_session.page_script_hash
            elif kind == "page_info_changed":
                self.query = msg.page_info_changed.query_string
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                el = msg.delta.new_element
                which = el.WhichOneof("type")
                if which == "button":
                    run.buttons.append((el.button.id, el.button.label))
                elif which == "imgs":
                    run.images += [i.url for i in el.imgs.imgs]
                elif which == "markdown":
                    run.markdown.append(el.markdown.body)
                elif which == "alert" and el.alert.format == 1:   # ERROR
                    run.errors.append(el.alert.body)
                elif which == "exception":
                    run.errors.append(el.exception.message)
            elif kind == "script_finished":
                if msg.script_finished == FINISHED_SUCCESSFULLY:
                    break
        phases["script_runs"] = time.perf_counter() - t0
        phases["runs_per_click"] = float(runs)
        t1 = time.perf_counter()
        for url in run.images:
            # as Streamlit's frontend resolves them: "/media/..." under the app's base path
            # (--server.baseUrlPath, e.g. /researcher/ behind app/serve.py's nginx)
            path = (self.path.rstrip("/") + url if url.startswith("/") else
                    urlsplit(urljoin(f"http://{self.host}{self.path}", url)).path)
            status, _, _ = await self.http.request("GET", path)
            if status != 200:
                raise RuntimeError(f"HTTP {status} for picture {url}")
        phases["pictures"] = time.perf_counter() - t1
        return run

    async def _click(self, element_id: str) -> Run:
        await self._send([(element_id, True)])
        return await self._until_done()

    async def run(self) -> Record:
        from websockets.asyncio.client import connect

        rec = self.record
        try:
            status, _, _ = await self.http.request("GET", f"{self.path}?{self.query}")
            if status != 200:
                raise RuntimeError(f"HTTP {status} for the page")
            async with connect(f"ws://{self.host}:{self.port}{self.path.rstrip('/')}/_stcore/stream",
                               subprotocols=["streamlit"], max_size=None, open_timeout=self.timeout,
                               ping_interval=None) as ws:
                self.ws = ws
                await self._send([])
                run = await self._until_done()
                consent = run.button("consent")
                if consent is None:
                    raise RuntimeError(f"no consent button: {' '.join(run.errors) or 'unknown page'}")
                await self.pace.think(self.rng)
                run = await self._click(consent)
                nxt = run.button("instructions")
                if nxt is None:
                    raise RuntimeError(f"no instructions: {' '.join(run.errors) or 'unknown page'}")
                await self.pace.think(self.rng)
                run = await self._click(nxt)
                while True:
                    if run.code:
                        rec.finished, rec.code = True, run.code
                        break
                    shown = run.answers()
                    if not shown:
                        raise RuntimeError(f"neither a question nor a code: {' '.join(run.errors) or 'unknown page'}")
                    item = shown[0][1]
                    labels = dict(run.buttons)
                    value = choose(run.question, [(labels[e], v) for e, _, v in shown], self.rng)
                    element_id = next(e for e, _, v in shown if v == value)
                    await self.pace.think(self.rng)
                    t0 = time.perf_counter()
                    if self.rng.random() < self.double_click:
                        # a double click: the browser sends the trigger twice in a row
                        rec.double_clicks += 1
                        await self._send([(element_id, True)])
                    run = await self._click(element_id)
                    rec.clicks.append(time.perf_counter() - t0)
                    rec.phases.append(dict(self.last_phases))
                    if run.code or any(i != item for _, i, _ in run.answers()):
                        rec.acked.append(item)
        except Exception as exc:  # noqa: BLE001
            rec.error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            await self.http.close()
        return rec
