"""Mechanical Turk batch export: input CSV + HTML layout, HTMLQuestion XML per HIT, media.

One HIT is one questionnaire version (all of its questions, in the version's order);
put as many assignments on each HIT as participants you want per version. The layout
uses crowd-html-elements (`<crowd-form>`, `<crowd-radio-group>` of `<crowd-radio-button
name="q<N>.<value>" value="<value>">`); `layout_fields` lists its radio buttons and is
what the importer builds its table of accepted answer columns from. A consent group
comes first: "I do not agree" tells the worker to return the HIT and blocks submitting.
Each export is a batch with a random id, recorded in the study's `private/mturk/`
(study.platforms.mturk_batch) so that the importer accepts only HITs of its batches.

Everything written here is seen by workers, so it carries only blinded ids, neutral
wording and opaque media names.
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from common.atomic import AtomicFolder
from study.errors import StudyError
from study.folder import StudyFolder
from study.platforms import mturk_batch
from study.wording import COMMON

CROWD_JS = "https://assets.crowd.aws/crowd-html-elements.js"
HTMLQUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
MAX_QUESTION_BYTES = 65535
GUIDE = Path(__file__).with_name("mturk_guide.md")
# The platform's status, stated only with where and when it was read.
STATUS = ("Amazon Mechanical Turk stopped taking new customers on 30 July 2026, and its documentation "
          "announces permanent closure on 30 September 2026")
STATUS_SOURCE = ("source: the Amazon Mechanical Turk documentation and service notice, as recorded in this "
                 "project's specification on 21 November 2026; check the current notice before relying on it")
CONSENT_FIRST = "Please say whether you agree to take part (at the top of the page) before submitting."
RETURN_HIT = ("You did not agree to take part. Please return this HIT (use \"Return\" at the top of the page); "
              "do not submit it.")


def status_note() -> str:
    """The closure facts with their source and date (printed by the export and the checks)."""
    return f"{STATUS} ({STATUS_SOURCE})."


@dataclass(frozen=True)
class RadioField:
    """One crowd-radio-button of the layout: `name` = "<group>.<value>", `value` = the answer."""
    group: str          # "consent" or "q<N>"
    value: str
    label: str

    @property
    def name(self) -> str:
        return f"{self.group}.{self.value}"


def consent_fields(study: StudyFolder) -> list[RadioField]:
    w = study.wording
    return [RadioField("consent", "agree", w["consent_button"]),
            RadioField("consent", "decline", w.get("decline_button", COMMON["decline_button"]))]


def layout_fields(study: StudyFolder) -> list[RadioField]:
    """Every radio button of the layout, in page order (consent, then q1, q2, ...)."""
    n_q = max(len(v) for v in study.versions)
    return consent_fields(study) + [RadioField(f"q{q}", o["value"], o["label"])
                                    for q in range(1, n_q + 1) for o in study.options]


def hidden_fields(study: StudyFolder) -> list[str]:
    """Names of the hidden inputs (they come back as answers too)."""
    n_q = max(len(v) for v in study.versions)
    return ["study", "version", "batch"] + [f"q{q}_item" for q in range(1, n_q + 1)]


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def layout_vars(study: StudyFolder) -> list[str]:
    """The `${var}` names of the layout = the input CSV's header, in order."""
    n_q = max(len(v) for v in study.versions)
    n_img = max(len(i["media"]) for i in study.items.values())
    names = ["study", "version", "batch"]
    for q in range(1, n_q + 1):
        names += [f"q{q}_item", f"q{q}_text"] + [f"q{q}_img{m}" for m in range(1, n_img + 1)]
    return names


def _radio_group(fields: list[RadioField]) -> str:
    buttons = "".join(f'<crowd-radio-button name="{_esc(f.name)}" value="{_esc(f.value)}">{_esc(f.label)}'
                      "</crowd-radio-button>" for f in fields)
    return f"<crowd-radio-group>{buttons}</crowd-radio-group>"


def render_layout(study: StudyFolder) -> str:
    """The HTML layout with `${var}` placeholders (what a requester pastes into the batch)."""
    n_q = max(len(v) for v in study.versions)
    n_img = max(len(i["media"]) for i in study.items.values())
    w = study.wording
    fields = layout_fields(study)
    parts = [
        f'<script src="{CROWD_JS}"></script>',
        "<style>img[src=\"\"]{display:none} .q{margin:1.5em 0;padding-top:1em;border-top:1px solid #ccc}"
        " .q img{max-width:48%;margin-right:1%;vertical-align:top} #no-consent{display:none;color:#a00}</style>",
        '<crowd-form answer-format="flatten-objects">',
        '<crowd-instructions link-text="View instructions" link-type="button">',
        f"<short-summary><p>{_esc(w['instructions'])}</p></short-summary>",
        f"<detailed-instructions><p>{_esc(w['consent'])}</p><p>{_esc(w['instructions'])}</p></detailed-instructions>",
        "</crowd-instructions>",
        f"<h2>{_esc(w['title'])}</h2>",
        f'<section id="consent"><p>{_esc(w["consent"])}</p>',
        _radio_group([f for f in fields if f.group == "consent"]),
        f'<p id="no-consent"><b>{_esc(RETURN_HIT)}</b></p></section>',
        f"<p>{_esc(w['instructions'])}</p>",
        '<input type="hidden" name="study" value="${study}">',
        '<input type="hidden" name="version" value="${version}">',
        '<input type="hidden" name="batch" value="${batch}">',
    ]
    for q in range(1, n_q + 1):
        parts.append(f'<section class="q" id="q{q}">')
        parts.append(f"<p><b>{q}.</b> ${{q{q}_text}}</p>")
        parts.append(f'<input type="hidden" name="q{q}_item" value="${{q{q}_item}}">')
        for m in range(1, n_img + 1):
            parts.append(f'<img src="${{q{q}_img{m}}}" alt="Question {q}, image {m}">')
        parts.append(_radio_group([f for f in fields if f.group == f"q{q}"]))
        parts.append("</section>")
    parts.append("</crowd-form>")
    parts.append(
        "<script>\n"
        "function checked(name) { var b = document.querySelector('crowd-radio-button[name=\"' + name + '\"]');"
        " return !!(b && b.checked); }\n"
        "document.querySelectorAll('crowd-radio-button[name^=\"consent.\"]').forEach(function (b) {\n"
        "  b.addEventListener('click', function () {\n"
        "    document.getElementById('no-consent').style.display = checked('consent.decline') ? 'block' : 'none';\n"
        "  });\n"
        "});\n"
        "document.querySelector('crowd-form').addEventListener('submit', function (event) {\n"
        "  if (!checked('consent.agree')) {\n"
        "    event.preventDefault();\n"
        f"    alert(checked('consent.decline') ? {json.dumps(RETURN_HIT)} : {json.dumps(CONSENT_FIRST)});\n"
        "    return;\n"
        "  }\n"
        "  var missing = [];\n"
        f"  for (var q = 1; q <= {n_q}; q++) {{\n"
        "    var buttons = document.querySelectorAll('crowd-radio-button[name^=\"q' + q + '.\"]');\n"
        "    var answered = false;\n"
        "    var item = document.querySelector('input[name=\"q' + q + '_item\"]');\n"
        "    buttons.forEach(function (b) { if (b.checked) { answered = true; } });\n"
        "    if (!answered && item && item.value) { missing.push(q); }\n"
        "  }\n"
        "  if (missing.length) {\n"
        "    event.preventDefault();\n"
        "    alert('Please answer every question before submitting (missing: ' + missing.join(', ') + ').');\n"
        "  }\n"
        "});\n"
        "</script>")
    return "\n".join(parts) + "\n"


def hit_rows(study: StudyFolder, base_url: str, batch: str = "") -> list[dict[str, str]]:
    """One input-CSV row per version; text values are HTML-escaped (MTurk inserts them as HTML)."""
    base = base_url.rstrip("/") + "/"
    names = layout_vars(study)
    n_img = max(len(i["media"]) for i in study.items.values())
    rows = []
    for v, seq in enumerate(study.versions):
        row = {name: "" for name in names}
        row.update(study=study.id, version=str(v), batch=batch)
        for q, item_id in enumerate(seq, start=1):
            item = study.items[item_id]
            row[f"q{q}_item"] = item_id
            row[f"q{q}_text"] = html.escape(item["question"], quote=False)
            for m in range(n_img):
                row[f"q{q}_img{m + 1}"] = base + Path(item["media"][m]).name if m < len(item["media"]) else ""
        rows.append(row)
    return rows


def fill(layout: str, row: dict[str, str]) -> str:
    """Substitute `${var}` like MTurk does (longest names first so q1_img1 is not hit by q1_img)."""
    out = layout
    for name in sorted(row, key=len, reverse=True):
        out = out.replace("${" + name + "}", row[name])
    return out


def html_question_doc(page: str, version: int) -> str:
    """The HTMLQuestion XML of one filled page (no size check)."""
    if "]]>" in page:
        raise StudyError(f"version {version}: the question HTML contains ']]>' and cannot go in CDATA")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<HTMLQuestion xmlns="{HTMLQUESTION_NS}">\n'
            f"<HTMLContent><![CDATA[\n<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n"
            f"{page}</body></html>\n]]></HTMLContent>\n<FrameHeight>0</FrameHeight>\n</HTMLQuestion>\n")


def question_sizes(study: StudyFolder, base_url: str) -> list[int]:
    """Bytes of each version's HTMLQuestion (what MTurk's 64 KB limit applies to)."""
    layout = render_layout(study)
    return [len(html_question_doc(fill(layout, row), v).encode("utf-8"))
            for v, row in enumerate(hit_rows(study, base_url, mturk_batch.new_batch_id()))]


def html_question(page: str, version: int) -> str:
    doc = html_question_doc(page, version)
    size = len(doc.encode("utf-8"))
    if size > MAX_QUESTION_BYTES:
        raise StudyError(f"version {version}: HTMLQuestion is {size} bytes, over MTurk's 64 KB limit "
                         f"({MAX_QUESTION_BYTES}); use fewer items per version")
    return doc


def export_mturk(study: StudyFolder, base_url: str, out: str | Path) -> Path:
    """Write the batch folder `out` atomically; returns it."""
    if not base_url.startswith(("https://", "http://")):
        raise StudyError(f"--base-url: must be an http(s) URL where media/ will be hosted (got {base_url!r})")
    if any(c in base_url for c in "\"'<> "):
        raise StudyError(f"--base-url: contains characters not allowed in a URL ({base_url!r})")
    out = Path(out)
    if out.exists():
        raise StudyError(f"{out}: already exists (choose a new folder)")
    layout = render_layout(study)
    batch = mturk_batch.new_batch_id()
    rows = hit_rows(study, base_url, batch)
    questions = {v: html_question(fill(layout, row), v) for v, row in enumerate(rows)}
    media = sorted({m for item in study.items.values() for m in item["media"]})
    base = base_url.rstrip("/") + "/"

    folder = AtomicFolder(out)       # first removes the temp folders of killed exports
    tmp = folder.path
    try:
        (tmp / "media").mkdir()
        (tmp / "hits").mkdir()
        lines = []
        for rel in media:
            src = study.root / rel
            shutil.copyfile(src, tmp / "media" / src.name)
            lines.append(f"{base}{src.name}\t{hashlib.sha256(src.read_bytes()).hexdigest()}")
        (tmp / "urls.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=layout_vars(study), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (tmp / "input.csv").write_text(buf.getvalue(), encoding="utf-8")
        (tmp / "layout.html").write_text(layout, encoding="utf-8")
        for v, doc in questions.items():
            (tmp / "hits" / f"version_{v:03d}.xml").write_text(doc, encoding="utf-8")
        guide = GUIDE.read_text(encoding="utf-8")
        (tmp / "GUIDE.md").write_text(guide.replace("{study_id}", study.id).replace("{base_url}", base)
                                      .replace("{n_hits}", str(len(rows))).replace("{batch}", batch)
                                      .replace("{status}", status_note()), encoding="utf-8")
        tmp.chmod(0o755)
        record = mturk_batch.save_batch(study, batch, base, rows)   # the importer accepts only these HITs
        try:
            folder.commit()
        except BaseException:
            record.unlink(missing_ok=True)
            raise
    except BaseException:
        folder.abort()
        raise
    return out


def _fetch(url: str, digest: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
            if resp.status != 200:
                return f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"unreachable ({getattr(exc, 'reason', exc)})"
    if hashlib.sha256(body).hexdigest() != digest:
        return "content differs from the exported file"
    return None


def check_hosted(export_dir: str | Path, timeout: float = 10.0, workers: int = 8) -> list[tuple[str, str]]:
    """Fetch every media URL of an export; returns (url, problem) for each that fails
    (not reachable, not 200, or not the exported bytes). Empty list = all good."""
    path = Path(export_dir) / "urls.tsv"
    try:
        entries = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError:
        raise StudyError(f"{path}: missing (is this a folder written by `python -m study export-mturk`?)") from None
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda e: (e[0], _fetch(e[0], e[1], timeout)), entries))
    return [(url, problem) for url, problem in results if problem]
