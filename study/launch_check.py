"""Before launch: is the study ready for participants? (`python -m study check`, the app's checklist page)

Each check returns a `Check` (name, ok, one-line summary, the problems found):
- links: the open link and the Prolific URL parse back to this study; with a base URL, the
  app answers there (HTTP 200) and the address is HTTPS (plain HTTP only for this machine);
- codes: completion, screen-out and no-consent codes present, distinct and well formed;
- media: every stimulus file is a PNG that decodes, with the bytes the build recorded
  (study.json media_sha256); with the app's address, every picture as the participant
  page serves it to a headless browser session, with exactly the study's bytes (local and
  Prolific studies: study/media_probe.py);
- mturk-media: with a media URL (Mechanical Turk loads pictures from the researcher's
  host), each file is served there (HTTP HEAD, GET where HEAD is not allowed) with exactly
  the study's bytes (SHA-256);
- attention: every version holds the attention checks the manifest announces, with
  instructed answers among the options, and failing them can screen a participant out;
- mturk: each version's HTMLQuestion stays under Mechanical Turk's 64 KB limit;
- blinding: no private term (method, atlas names) in anything a participant sees.
`preview_text` is what a participant will read, page by page.
"""
from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from study.errors import StudyError
from study.folder import StudyFolder
from study.kinds import ATTENTION
from study.platforms.local import open_link, parse_link
from study.platforms.mturk_export import (MAX_QUESTION_BYTES, RETURN_HIT, question_sizes, render_layout,
                                          status_note)
from study.platforms.prolific import RETURN_MESSAGE, completion_url, study_url
from study.session import item_view
from study.spec import CODE_KINDS, CODE_RE
from study.wording import COMMON

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Check:
    name: str
    ok: bool | None            # None: not run (e.g. no URL given)
    summary: str
    problems: list[str] = field(default_factory=list)

    @property
    def mark(self) -> str:
        return {True: "ok", False: "FAIL", None: "skip"}[self.ok]


def _url_problem(url: str, what: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in "\"'<> "):
        return f"{what} {url!r} is not an http(s) address"
    if parts.scheme == "http":
        host = parts.hostname or ""
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local:
            return f"{what} {url!r} is plain HTTP: participants' browsers and Prolific need HTTPS"
    return None


def _request(url: str, method: str, timeout: float) -> tuple[int | str, bytes, dict]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read() if method == "GET" else b"", dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, b"", {}
    except (urllib.error.URLError, OSError) as exc:
        return f"unreachable ({getattr(exc, 'reason', exc)})", b"", {}


def check_links(study: StudyFolder, base_url: str | None, timeout: float = 10.0) -> Check:
    sid = study.root.name          # the folder name is what links carry
    if not base_url:
        return Check("links", None, "no --base-url given: links not checked (pass the app's public address)")
    problems = [p for p in [_url_problem(base_url, "base URL")] if p]
    if problems:
        return Check("links", False, "the base URL is not usable", problems)
    opened, prolific = open_link(base_url, sid), study_url(base_url, sid)
    from study.platforms.registry import REGISTRY
    examples = [(p.example_link(base_url, sid), name) for name, p in REGISTRY.items()]
    for url, platform in [(u, name) for u, name in examples if u]:
        try:
            link = parse_link(parse_qs(urlsplit(url).query))
            if (link.study_id, link.platform) != (sid, platform):
                problems.append(f"{url} opens {link.platform} study {link.study_id!r}")
        except StudyError as exc:
            problems.append(f"{url}: {exc}")
    status, _, _ = _request(opened, "GET", timeout)
    if status != 200:
        problems.append(f"{opened}: HTTP {status}" if isinstance(status, int) else f"{opened}: {status}")
    summary = f"open link {opened}, Prolific URL {prolific}" + ("" if problems else f"; the app answers at {base_url}")
    return Check("links", not problems, summary, problems)


def check_codes(study: StudyFolder) -> Check:
    codes = study.manifest["codes"]
    problems = []
    for kind in CODE_KINDS:
        code = codes.get(kind)
        if not code:
            problems.append(f"study.json: codes.{kind} is missing (set it in the spec and rebuild)")
        elif not CODE_RE.match(code):
            problems.append(f"study.json: codes.{kind} {code!r} is not 4-64 letters, digits, '-' or '_'")
    given = [codes[k] for k in CODE_KINDS if codes.get(k)]
    if len(set(given)) != len(given):
        problems.append("study.json: the completion, screen-out and no-consent codes must all differ")
    summary = ", ".join(f"{k} {codes.get(k) or '-'}" for k in CODE_KINDS)
    return Check("codes", not problems, f"{summary} (Prolific: {completion_url('CODE')})", problems)


def _media_problem(url: str, path: Path, timeout: float) -> str | None:
    status, _, headers = _request(url, "HEAD", timeout)
    if status in (405, 501):                    # some hosts refuse HEAD: GET decides
        status = 200
    if status != 200:
        return f"{url}: HTTP {status}" if isinstance(status, int) else f"{url}: {status}"
    size = headers.get("Content-Length")
    data = path.read_bytes()
    if size is not None and size.isdigit() and int(size) != len(data):
        return f"{url}: {size} bytes served, the study's file has {len(data)}"
    status, body, _ = _request(url, "GET", timeout)
    if status != 200:
        return f"{url}: HTTP {status}" if isinstance(status, int) else f"{url}: {status}"
    if hashlib.sha256(body).digest() != hashlib.sha256(data).digest():
        return f"{url}: content differs from the study's file {path.name}"
    return None


def _file_problems(study: StudyFolder, files: list[str]) -> list[str]:
    """Each media file: present, a PNG that decodes, and (studies built since study.json
    records them) exactly the bytes the build wrote."""
    from PIL import Image

    recorded = study.manifest.get("media_sha256") or {}
    problems = []
    for rel in files:
        path = study.media_path(rel)
        try:
            data = path.read_bytes()
        except OSError:
            problems.append(f"{path}: missing")
            continue
        if data[:8] != PNG_MAGIC:
            problems.append(f"{path}: not a PNG")
            continue
        if rel in recorded and hashlib.sha256(data).hexdigest() != recorded[rel]:
            problems.append(f"{path}: changed since the build (its SHA-256 differs from study.json's "
                            "media_sha256); rebuild the study")
            continue
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except (OSError, ValueError, SyntaxError) as exc:
            problems.append(f"{path}: not a readable image ({exc})")
    return problems


def _media_files(study: StudyFolder) -> list[str]:
    return sorted({m for item in study.items.values() for m in item["media"]})


def check_media(study: StudyFolder, base_url: str | None, timeout: float = 30.0) -> Check:
    """The pictures as participants of a local or Prolific study get them: the study's
    files, then (with the app's address) every image the participant page loads in a
    headless browser session, byte for byte (study/media_probe.py)."""
    from study.media_probe import fetch_participant_media, media_check_token

    files = _media_files(study)
    problems = _file_problems(study, files)
    if problems or not base_url:
        summary = f"{len(files)} media files" + ("" if base_url else
                                                 "; no --base-url given: the participant page not checked")
        return Check("media", False if problems else None, summary, problems)
    url_problem = _url_problem(base_url, "base URL")
    if url_problem:
        return Check("media", False, "the base URL is not usable", [url_problem])
    sid = study.root.name
    try:
        token = media_check_token(study.root / "private" / "key.json", sid)
        served, page_error = fetch_participant_media(base_url, sid, token, files, timeout=timeout)
    except StudyError as exc:
        return Check("media", False, "the participant page could not be checked", [str(exc)])
    if page_error:
        return Check("media", False, f"the participant page showed an error instead of the {len(files)} pictures",
                     [f"{base_url}: {page_error}"])
    for got in served:
        path = study.media_path(got.name)
        if got.url is None:
            problems.append(f"{got.name}: the participant page shows no such picture")
        elif got.status != 200:
            problems.append(f"{got.name}: HTTP {got.status} at {got.url}")
        elif not got.content_type.startswith("image/png"):
            problems.append(f"{got.name}: served as {got.content_type or 'no type'} at {got.url}")
        elif hashlib.sha256(got.body).digest() != hashlib.sha256(path.read_bytes()).digest():
            problems.append(f"{got.name}: the participant page serves other bytes than the study's file "
                            f"({len(got.body)} bytes, the file has {path.stat().st_size})")
    return Check("media", not problems, f"{len(files) - len(problems)} of {len(files)} media files served "
                 f"by the participant page at {base_url} (local and Prolific studies)", problems)


def check_mturk_media(study: StudyFolder, media_url: str | None, timeout: float = 10.0, workers: int = 8) -> Check:
    """Mechanical Turk's HITs load the pictures from the researcher's own host (--media-url)."""
    files = _media_files(study)
    if not media_url:
        return Check("mturk-media", None, "no media URL given: the Mechanical Turk media host not checked")
    url_problem = _url_problem(media_url, "media URL")
    if url_problem:
        return Check("mturk-media", False, "the media URL is not usable", [url_problem])
    base = media_url.rstrip("/") + "/"
    missing = [f for f in files if not study.media_path(f).is_file()]
    if missing:
        return Check("mturk-media", False, "the study's media files are missing",
                     [f"{study.media_path(f)}: missing" for f in missing])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = list(pool.map(lambda rel: _media_problem(base + Path(rel).name, study.media_path(rel), timeout),
                              files))
    problems = [p for p in found if p]
    return Check("mturk-media", not problems,
                 f"{len(files) - len(problems)} of {len(files)} media files served at {base} (Mechanical Turk)",
                 problems)


def check_attention(study: StudyFolder) -> Check:
    att = study.manifest["attention"]
    key = study.key
    attention = sorted(i for i, info in key.items() if info.get("kind") == ATTENTION)
    problems = []
    if att["count"] == 0 or not attention:
        problems.append("no attention checks (spec: attention.count); inattentive answers cannot be screened out")
    for v, seq in enumerate(study.versions):
        n = sum(1 for item in seq if key.get(item, {}).get("kind") == ATTENTION)
        if n != att["count"]:
            problems.append(f"version {v}: {n} attention checks, the manifest announces {att['count']}")
    labels = {o["value"]: o["label"] for o in study.options}
    for item in attention:
        expected = key[item].get("expected")
        if expected not in labels:
            problems.append(f"attention item {item}: instructed answer {expected!r} is not an option")
        elif labels[expected] not in study.items[item]["question"]:
            problems.append(f"attention item {item}: the question does not name the instructed answer")
    if attention and att["max_failures"] >= att["count"]:
        problems.append(f"attention.max_failures {att['max_failures']} >= attention.count {att['count']}: "
                        "nobody can be screened out")
    return Check("attention", not problems,
                 f"{att['count']} per version, screened out after {att['max_failures'] + 1} failure(s)", problems)


def check_mturk(study: StudyFolder, media_url: str | None) -> Check:
    sizes = question_sizes(study, media_url or "https://media.example.org/")
    over = [f"version {v}: HTMLQuestion is {s} bytes, over MTurk's limit of {MAX_QUESTION_BYTES} "
            f"(use fewer items per version)" for v, s in enumerate(sizes) if s > MAX_QUESTION_BYTES]
    return Check("mturk", not over, f"largest HTMLQuestion {max(sizes)} of {MAX_QUESTION_BYTES} bytes. "
                 f"{status_note()}", over)


def public_texts(study: StudyFolder) -> list[tuple[str, str]]:
    """(where, text) of everything a participant can see."""
    w = study.wording
    out = [(f"wording.{k}", v) for k, v in w.items() if isinstance(v, str)]
    out += [(f"option {o['value']}", o["label"]) for o in study.options]
    out += [(f"item {i}", item["question"]) for i, item in study.items.items()]
    out += [(f"item {i} media", " ".join(item["media"])) for i, item in study.items.items()]
    out += [("MTurk layout", render_layout(study)), ("Prolific return message", RETURN_MESSAGE)]
    return out


def check_blinding(study: StudyFolder) -> Check:
    terms = _private_terms(study)
    problems = [f"{where} contains the private term {term!r}" for where, text in public_texts(study)
                for term in terms if term.lower() in text.lower()]
    return Check("blinding", not problems, f"{len(terms)} private terms, none in participants' texts"
                 if not problems else "private terms reach participants", problems)


def _private_terms(study: StudyFolder) -> list[str]:
    path = study.root / "private" / "key.json"
    try:
        return [t for t in json.loads(path.read_text(encoding="utf-8")).get("private_terms", []) if t]
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path}: not readable ({exc})") from None


def run_checks(study: StudyFolder, base_url: str | None = None, media_url: str | None = None,
               timeout: float = 10.0) -> list[Check]:
    """`base_url`: the app (links, and the media of local and Prolific studies through the
    participant page); `media_url`: where media/ is hosted for Mechanical Turk."""
    return [check_links(study, base_url, timeout), check_codes(study),
            check_media(study, base_url, max(timeout, 30.0)), check_mturk_media(study, media_url, timeout),
            check_attention(study), check_mturk(study, media_url), check_blinding(study)]


def preview_text(study: StudyFolder, questions: int = 3) -> str:
    """What a participant reads, page by page (version 0; media by their blinded names)."""
    w = study.wording
    codes = study.manifest["codes"]
    options = " | ".join(o["label"] for o in study.options)
    lines = [f"# {w['title']}", "", "[consent page]", w["consent"],
             f"  buttons: [{w['consent_button']}] [{w.get('decline_button', COMMON['decline_button'])}]", "",
             "[instructions]", w["instructions"], f"  button: [{w['next_button']}]", ""]
    seq = study.versions[0]
    for position in range(min(questions, len(seq))):
        view = item_view(study, 0, position)
        lines.append(f"[question {position + 1} of {view.total}] {view.question}")
        for path, caption in zip(view.media, view.captions):
            lines.append(f"  image {Path(path).name}: {caption}")
        lines.append(f"  answers: {options}")
    if len(seq) > questions:
        lines.append(f"... {len(seq) - questions} more questions")
    no_consent = w.get("no_consent_message", COMMON["no_consent_message"])
    lines += ["", "[end] " + w["completion_message"], f"  code {codes.get('completion')}",
              "[screened out] " + w["screen_out_message"], f"  code {codes.get('screen_out')}",
              "[did not agree] " + no_consent,
              f"  on Prolific also: {RETURN_MESSAGE} code {codes.get('no_consent') or '-'}",
              f"  on Mechanical Turk: {RETURN_HIT}"]
    return "\n".join(lines)
