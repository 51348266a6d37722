"""The lean participant pages as HTML strings: every text goes through `html.escape`.

The layout follows app/participant.py: a page capped at 1180 px, the pictures of a
question side by side in equal columns, each at its own size (one CSS pixel per image
pixel, the `width`/`height` attributes read from the PNG header) and scaled down
proportionally only where its column is narrower, a gap above them, the question in
bold and one button per option in a row of equal buttons. No JavaScript: every button
is a form submit, so a page works in any browser and costs one request.
"""
from __future__ import annotations

import struct
from html import escape
from pathlib import Path

from app.layout import PAGE_WIDTH

STYLE = f"""
body {{ margin: 0; font-family: "Source Sans Pro", system-ui, -apple-system, "Segoe UI", sans-serif;
       color: #31333f; background: #fff; line-height: 1.6; font-size: 16px; }}
main {{ max-width: {PAGE_WIDTH}px; margin: 0 auto; padding: 2rem 1.5rem 4rem; box-sizing: border-box; }}
h1 {{ font-size: 2.25rem; font-weight: 700; margin: 0 0 1rem; }}
.pp-progress {{ margin: 0 0 1.75rem; }}
.pp-progress progress {{ width: 100%; height: .5rem; accent-color: #ff4b4b; display: block; }}
.pp-progress span {{ font-size: .9rem; }}
.pp-media {{ display: grid; gap: 1rem; align-items: start; margin: 0 0 1rem; }}
.pp-media figure {{ margin: 0; min-width: 0; }}
.pp-media img {{ max-width: 100%; height: auto; display: block; }}
.pp-media figcaption {{ font-size: .875rem; color: rgba(49, 51, 63, .6); margin-top: .25rem; }}
.pp-options {{ display: grid; gap: 1rem; margin: 1rem 0; }}
button, .pp-button {{ font: inherit; padding: .4rem .75rem; border-radius: .5rem; border: 1px solid rgba(49, 51, 63, .2);
          background: #fff; color: inherit; cursor: pointer; text-decoration: none; display: inline-block;
          text-align: center; box-sizing: border-box; }}
button:hover, .pp-button:hover {{ border-color: #ff4b4b; color: #ff4b4b; }}
.pp-primary {{ background: #ff4b4b; border-color: #ff4b4b; color: #fff; }}
.pp-primary:hover {{ background: #ff3333; color: #fff; }}
.pp-options button {{ width: 100%; }}
.pp-two {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }}
.pp-two button {{ width: 100%; }}
.pp-note {{ padding: 1rem; border-radius: .5rem; background: rgba(28, 131, 225, .1); }}
.pp-success {{ padding: 1rem; border-radius: .5rem; background: rgba(33, 195, 84, .1); }}
.pp-warning {{ padding: 1rem; border-radius: .5rem; background: rgba(255, 193, 7, .15); }}
.pp-error {{ padding: 1rem; border-radius: .5rem; background: rgba(255, 43, 43, .09); color: #7d353b; }}
"""


def paragraphs(text: str) -> str:
    """Wording as paragraphs (blank lines separate them), escaped."""
    parts = [p.strip() for p in str(text).split("\n\n") if p.strip()]
    return "".join(f"<p>{escape(p)}</p>" for p in parts)


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG header; None when the file is not a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def page(title: str, body: str, *, status_title: str = "Questionnaire") -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(status_title)}</title><style>{STYLE}</style></head>"
            f"<body><main data-pp-page>{'<h1>' + escape(title) + '</h1>' if title else ''}{body}</main></body></html>")


def hidden(fields: dict[str, str]) -> str:
    return "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(str(v))}">' for k, v in fields.items())


def error(message: str) -> str:
    return f'<div class="pp-error" role="alert" data-pp-error>{escape(message)}</div>'


def consent(wording: dict, action: str, agree: str, decline: str) -> str:
    return (paragraphs(wording["consent"])
            + f'<form method="post" action="{escape(action)}" class="pp-two">'
            f'<button type="submit" name="consent" value="agree" class="pp-primary">{escape(agree)}</button>'
            f'<button type="submit" name="consent" value="decline">{escape(decline)}</button></form>')


def instructions(wording: dict, action: str, fields: dict[str, str]) -> str:
    return (paragraphs(wording["instructions"])
            + f'<form method="get" action="{escape(action)}">{hidden(fields)}'
            f'<button type="submit" class="pp-primary" data-pp-next>{escape(wording["next_button"])}</button></form>')


def figure(src: str, caption: str, size: tuple[int, int] | None, name: str | None = None) -> str:
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    named = f' data-media-name="{escape(name)}"' if name is not None else ""
    return (f'<figure class="pp-figure"{named}><img src="{escape(src)}" alt="{escape(caption)}"{dims}>'
            f'<figcaption>{escape(caption)}</figcaption></figure>')


def question(item, options: list[dict], media: list[tuple[str, tuple[int, int] | None]], action: str,
             fields: dict[str, str]) -> str:
    """One question: progress, pictures (src, size), question, one submit button per option."""
    figures = "".join(figure(src, caption, size) for (src, size), caption in zip(media, item.captions))
    buttons = "".join(f'<button type="submit" name="value" value="{escape(str(o["value"]))}">'
                      f'{escape(str(o["label"]))}</button>' for o in options)
    return (f'<div class="pp-progress"><progress value="{item.position}" max="{item.total}"></progress>'
            f'<span>Question {item.position + 1} of {item.total}</span></div>'
            f'<div class="pp-media" style="grid-template-columns: repeat({len(media)}, minmax(0, 1fr))">{figures}</div>'
            f'<p class="pp-question"><strong>{escape(item.question)}</strong></p>'
            f'<form method="post" action="{escape(action)}" data-pp-item="{escape(item.item_id)}">{hidden(fields)}'
            f'<div class="pp-options" style="grid-template-columns: repeat({len(options)}, minmax(0, 1fr))">'
            f'{buttons}</div></form>')


def completion(completion, *, declined: bool = False) -> str:
    """The end page: the message, the code, and Prolific's button where there is one."""
    box = "pp-note" if declined else ("pp-success" if completion.status == "finished" else "pp-warning")
    body = f'<div class="{box}">{paragraphs(completion.message)}</div>'
    if completion.code:
        label = "Your code" if declined else "Your completion code"
        body += f'<p>{label}: <strong data-pp-code>{escape(completion.code)}</strong></p>'
    if completion.redirect_url:
        text = "Return to Prolific" if declined else "Return to Prolific to finish"
        body += (f'<p><a class="pp-button pp-primary" href="{escape(completion.redirect_url)}" '
                 f'rel="noreferrer" data-pp-redirect>{escape(text)}</a></p>')
    return body


def media_check(figures: list[tuple[str, str, tuple[int, int] | None]]) -> str:
    """Every picture of the study, captioned with its file name (study/media_probe.py)."""
    body = "".join(figure(src, name, size, name=name) for src, name, size in figures)
    return f'<div class="pp-media-check">{body}</div><span data-media-done="{len(figures)}"></span>'
