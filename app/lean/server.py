"""The lean participant server (Starlette and uvicorn, installed with Streamlit).

    python -m app lean --port 8601 [--home DIR] [--researcher-url /researcher/]

URLs (the participant links of study/platforms/local.py and prolific.py, unchanged):
- `GET /?study=ID[&token=T | &PROLIFIC_PID=..&STUDY_ID=..&SESSION_ID=..]` the page the link
  is at: consent, instructions (`&step=instructions`), the first unanswered question, or
  the completion code; `&media_check=TOKEN`: every picture (python -m study check);
- `POST` to the same URL: `consent=agree|decline`, or `item=ID&value=V&shown=MS` (an
  answer; the item id is in the form, so a double click or a resent POST stores one
  answer: `StudyRunner.record_answer` ignores a replay), answered with a redirect (303)
  to the page that comes next;
- `GET /media/ID/BUILD/NAME.png` a study's blinded media file byte for byte (only names
  the study lists; BUILD is the study build's fingerprint, so a rebuilt study's pictures
  never come from a cache of the old build's);
- `GET /healthz` "ok" (the reverse proxy's check); `GET /` without a study: a redirect to
  the researcher app when `--researcher-url` is given.

Nothing is kept in the process between requests but the opened studies: the link (the
token or the Prolific id) finds the participant in the store, so any process serving
the workspace can take any request, and a participant whose process died goes on at
the first unanswered question on another.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from app.errors import participant_message
from app.lean import pages
from app.workspace import Workspace, current
from common.names import is_study_id
from study.errors import StudyError
from study.platforms.local import Link, parse_link
from study.platforms.registry import platform_of
from study.wording import COMMON

log = logging.getLogger("protoproto.lean")

MEDIA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}\.png$")
MAX_SHOWN_MS = 24 * 3600 * 1000          # a response time beyond a day is not believed
SECURITY_HEADERS = {
    # no script at all; pictures and forms only from here; tokens never leak in a Referer
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class Runners:
    """One `StudyRunner` per study build (the key holds study.json's modification time)."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._lock = threading.Lock()
        self._open: dict[tuple, object] = {}

    def get(self, study_id: str):
        if not is_study_id(study_id):
            raise StudyError("This study link is not valid.")
        folder = self.workspace.studies / study_id
        try:
            mtime = (folder / "study.json").stat().st_mtime
        except OSError:
            raise StudyError("This study link is not valid.") from None
        key = (str(folder), self.workspace.db, mtime)
        with self._lock:
            runner = self._open.get(key)
            if runner is None:
                from study.session import StudyRunner

                runner = StudyRunner.open(folder, db=self.workspace.db)
                for old in [k for k in self._open if k[0] == key[0]]:
                    self._open.pop(old)
                self._open[key] = runner
            return runner


def _one(params: dict, name: str) -> str | None:
    value = params.get(name)
    return value[-1] if value else None


def link_fields(link: Link, token: str | None = None) -> dict[str, str]:
    """The query of a link (what every page's forms carry on), as its platform words it."""
    return platform_of(link.platform).link_query(link, token)


def link_url(link: Link, token: str | None = None, **extra: str) -> str:
    """A link to this page, relative (`?study=...`): forms, redirects and pictures resolve
    against the page's own address, so the page also works under a path prefix."""
    return "?" + urlencode({**link_fields(link, token), **extra})


class Response:
    def __init__(self, status: int = 200, body: str | bytes = b"", *, location: str | None = None,
                 content_type: str = "text/html; charset=utf-8", headers: dict | None = None):
        self.status, self.body, self.location = status, body, location
        self.content_type, self.headers = content_type, headers or {}


class Flow:
    """The participant pages, as functions of (query parameters, form) -> Response.
    Blocking (the answer store); the server runs them on a thread pool."""

    def __init__(self, workspace: Workspace, researcher_url: str | None = None):
        self.runners = Runners(workspace)
        self.researcher_url = researcher_url

    # --- pages -------------------------------------------------------------------------
    def _page(self, runner, body: str, status: int = 200) -> Response:
        return Response(status, pages.page(runner.wording["title"] if runner else "", body))

    def _error(self, exc: BaseException, runner=None) -> Response:
        status = 400 if isinstance(exc, StudyError) else 500
        return self._page(runner, pages.error(participant_message(exc)), status)

    def get(self, params: dict) -> Response:
        if "study" not in params:
            if self.researcher_url:
                return Response(303, location=self.researcher_url)
            return self._page(None, pages.error("This study link is not valid."), 404)
        runner = None
        try:
            runner = self.runners.get(_one(params, "study") or "")
            if "media_check" in params:
                return self._media_check(runner, _one(params, "media_check") or "")
            link = parse_link(params)
            participant = runner.find(**link.start_kwargs())
            started = participant is not None and participant.status != "invited"
            if started and participant.status in ("finished", "screened_out"):
                return self._page(runner, pages.completion(runner.finish(participant.participant_id)))
            # answers are stored in order (record_answer refuses any other): the first
            # unanswered question's position is the number answered
            item = runner.next_item(participant.participant_id) if started else None
            answered = item.position if item is not None else (1 if started else 0)
            step = _one(params, "step")
            if not started or (answered == 0 and step not in ("instructions", "questions")):
                return self._consent(runner, link)
            if answered == 0 and step == "instructions":
                fields = link_fields(link, participant.token)
                fields["step"] = "questions"
                return self._page(runner, pages.instructions(runner.wording, "", fields))
            if item is None:
                return self._page(runner, pages.completion(runner.finish(participant.participant_id)))
            fields = {"item": item.item_id, "shown": str(int(time.time() * 1000))}
            media = [(media_url(runner, Path(p).name), pages.png_size(p)) for p in item.media]
            return self._page(runner, pages.question(item, runner.options, media,
                                                     link_url(link, participant.token), fields))
        except Exception as exc:  # noqa: BLE001 - a participant sees one neutral line, the log the rest
            return self._error(exc, runner)

    def _consent(self, runner, link: Link) -> Response:
        wording = runner.wording
        return self._page(runner, pages.consent(wording, link_url(link), wording["consent_button"],
                                                wording.get("decline_button", COMMON["decline_button"])))

    def post(self, params: dict, form: dict) -> Response:
        runner = None
        try:
            runner = self.runners.get(_one(params, "study") or "")
            link = parse_link(params)
            choice = _one(form, "consent")
            if choice == "agree":
                participant = runner.start(**link.start_kwargs())
                return Response(303, location=link_url(link, participant.token, step="instructions"))
            if choice == "decline":
                done = runner.decline(**link.start_kwargs())
                return self._page(runner, pages.completion(done, declined=True))
            item_id, value = _one(form, "item"), _one(form, "value")
            if item_id is None or value is None:
                raise StudyError("This page is out of date. Please open your study link again.")
            participant = runner.find(**link.start_kwargs())
            if participant is None or participant.status == "invited":
                return Response(303, location=link_url(link))
            if participant.status == "active":
                runner.record_answer(participant.participant_id, item_id, value,
                                     response_ms=_response_ms(_one(form, "shown")))
            return Response(303, location=link_url(link, participant.token))
        except Exception as exc:  # noqa: BLE001
            return self._error(exc, runner)

    def _media_check(self, runner, token: str) -> Response:
        """Every picture of the study, as a question shows it, captioned with its file name
        (the page `python -m study check` opens: study/media_probe.py). Only the holder of
        the study folder knows the token (derived from the private key)."""
        import hmac

        from study.media_probe import media_check_token

        study = runner.study
        expected = media_check_token(study.root / "private" / "key.json", study.root.name)
        if not hmac.compare_digest(str(token), expected):
            raise StudyError("This study link is not valid.")
        names = sorted({m for item in study.items.values() for m in item["media"]})
        figures = [(media_url(runner, Path(n).name), n, pages.png_size(study.media_path(n)))
                   for n in names]
        return self._page(runner, pages.media_check(figures))

    def media(self, study_id: str, build: str, name: str) -> Response:
        """A study's media file byte for byte; 404 for anything the study does not list."""
        try:
            runner = self.runners.get(study_id)
        except StudyError:
            return Response(404, b"not found", content_type="text/plain")
        if build != _build(runner) or not MEDIA_NAME.match(name) or f"media/{name}" not in _media_names(runner):
            return Response(404, b"not found", content_type="text/plain")
        data = runner.study.media_path(f"media/{name}").read_bytes()
        return Response(200, data, content_type="image/png",
                        headers={"Cache-Control": "public, max-age=86400, immutable"})


def _build(runner) -> str:
    return runner.study.fingerprint[:16]


def media_url(runner, name: str) -> str:
    return f"media/{runner.study.root.name}/{_build(runner)}/{name}"


def _media_names(runner) -> frozenset:
    names = getattr(runner, "_lean_media", None)
    if names is None:
        names = frozenset(m for item in runner.study.items.values() for m in item["media"])
        runner._lean_media = names
    return names


def _response_ms(shown: str | None) -> int | None:
    try:
        elapsed = int(time.time() * 1000) - int(shown or "")
    except ValueError:
        return None
    return elapsed if 0 <= elapsed <= MAX_SHOWN_MS else None


def make_app(flow: Flow):
    """The ASGI application (Starlette, installed with Streamlit). The flow's calls block
    on the answer store, so they run on Starlette's thread pool."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, RedirectResponse
    from starlette.responses import Response as StarletteResponse
    from starlette.routing import Route

    def send(resp: Response) -> StarletteResponse:
        headers = {**SECURITY_HEADERS, **resp.headers}
        if resp.location:
            return RedirectResponse(resp.location, status_code=resp.status, headers=headers)
        return StarletteResponse(resp.body, status_code=resp.status, headers=headers, media_type=resp.content_type)

    def params_of(request: Request) -> dict:
        out: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            out.setdefault(key, []).append(value)
        return out

    def timed(arrived: float, call, *args) -> Response:
        """`call(*args)`, its response carrying where the time went (Server-Timing: waiting
        for a thread, then the flow's work: the store and the page), read by app/loadtest/."""
        started = time.perf_counter()
        resp = call(*args)
        resp.headers["Server-Timing"] = (f"queue;dur={1000 * (started - arrived):.1f}, "
                                         f"app;dur={1000 * (time.perf_counter() - started):.1f}")
        return resp

    async def page(request: Request):
        arrived = time.perf_counter()
        if request.method == "POST":
            form = await request.form()
            fields: dict[str, list[str]] = {}
            for key, value in form.multi_items():
                if isinstance(value, str):
                    fields.setdefault(key, []).append(value)
            return send(await run_in_threadpool(timed, arrived, flow.post, params_of(request), fields))
        return send(await run_in_threadpool(timed, arrived, flow.get, params_of(request)))

    async def media(request: Request):
        arrived = time.perf_counter()
        return send(await run_in_threadpool(timed, arrived, flow.media, request.path_params["study"],
                                            request.path_params["build"], request.path_params["name"]))

    async def health(_request: Request):
        return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route("/", page, methods=["GET", "POST"]),
                             Route("/media/{study}/{build}/{name}", media, methods=["GET"]),
                             Route("/healthz", health, methods=["GET"])])


def bind(port: int, address: str = "127.0.0.1"):
    """The listening socket, bound before anything starts; a busy port is one clear line."""
    import errno
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StudyError(f"port {port} on {address} is already in use (is the app already running? "
                             "stop it or choose another --port)") from None
        raise StudyError(f"cannot listen on {address}:{port} ({exc.strerror or exc})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(sock, researcher_url: str | None = None, threads: int = 16) -> None:
    """Serve on a bound socket until SIGINT/SIGTERM (blocking)."""
    import anyio.to_thread
    import uvicorn

    flow = Flow(current(), researcher_url)
    app = make_app(flow)

    async def startup():
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads

    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=True,
                            forwarded_allow_ips="127.0.0.1", timeout_keep_alive=75, lifespan="off",
                            server_header=False)
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    print(f"Participant pages at http://{host}:{port}/ (pid {os.getpid()})", flush=True)

    async def run():
        await startup()
        await server.serve(sockets=[sock])

    import asyncio

    asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app lean", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=None, help="workspace folder (default: $PROTOPROTO_HOME or .demo)")
    parser.add_argument("--port", type=int, default=8601)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--researcher-url", default=None, help="where `/` without a study link goes")
    parser.add_argument("--threads", type=int, default=16, help="threads for the answer store's calls")
    parser.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)   # a socket bound by app/serve.py
    args = parser.parse_args(argv)
    if args.home:
        os.environ["PROTOPROTO_HOME"] = os.path.abspath(args.home)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.fd is not None:
            import socket

            sock = socket.socket(fileno=args.fd)
        else:
            sock = bind(args.port, args.address)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    serve(sock, args.researcher_url, args.threads)
    return 0
