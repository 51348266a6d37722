"""The participant flow: consent → instructions → one question per page → code.

Everything here is what a participant sees, so it shows only the study's wording and
its blinded media; the study key and method names never reach this module's output.
State lives in the answer store, not in the browser session: a link is looked up with
`StudyRunner.find` (which creates nothing), the participant is created by `start` only
on "I agree", `start` resumes at the first unanswered question, and an answer is
committed by `record_answer` before the rerun that shows the next question. "I do not
agree" calls `decline`, which keeps nothing but a refusal count; Prolific participants
then get the no-consent code and are asked to return their submission.
"""
from __future__ import annotations

import hmac
import struct
import time
from pathlib import Path

import streamlit as st

from app.studies import runner_for
from app.workspace import Workspace
from app.errors import participant_message
from app.layout import PAGE_WIDTH
from study.errors import StudyError
from study.platforms.local import parse_link
from study.platforms.registry import platform_of
from study.wording import COMMON


MAX_STRETCH_WIDTH = 1460    # streamlit.elements.lib.image_utils.MAXIMUM_CONTENT_WIDTH


def _stage_key(platform: str, token: str | None, worker_id: str) -> str:
    """Which participant a browser session's stage belongs to (known before anyone is stored)."""
    return f"{platform}:{token or worker_id or 'open'}"


def _start(runner, link):
    """Start or resume from the link; an open link gets its token in the URL."""
    participant = runner.start(**link.start_kwargs())
    if platform_of(link.platform).uses_tokens and link.token != participant.token:
        st.query_params["token"] = participant.token
    return participant


def _declined(completion, link) -> None:
    st.info(completion.message)
    if completion.code:
        st.markdown(f"Your code: **{completion.code}**")
    if completion.redirect_url:
        st.link_button(platform_of(link.platform).return_label, completion.redirect_url, type="primary")


def _consent(runner, link, participant, stages: dict, declined: dict, study_id: str) -> None:
    wording = runner.wording
    st.write(wording["consent"])
    agree, refuse = st.columns(2)
    if agree.button(wording["consent_button"], type="primary", key="consent", width="stretch"):
        participant = _start(runner, link)
        stages[_stage_key(link.platform, participant.token if platform_of(link.platform).uses_tokens else None,
                          participant.worker_id)] = "instructions"
        st.rerun()
    if refuse.button(wording.get("decline_button", COMMON["decline_button"]), key="decline", width="stretch"):
        declined[study_id] = runner.decline(**link.start_kwargs())
        if platform_of(link.platform).uses_tokens and link.token and (participant is None or participant.status != "invited"):
            del st.query_params["token"]          # that participant no longer exists
        st.rerun()


def _done(runner, participant_id: str, link) -> None:
    completion = runner.finish(participant_id)
    if completion.status == "finished":
        st.success(completion.message)
    else:
        st.warning(completion.message)
    st.markdown(f"Your completion code: **{completion.code}**")
    if completion.redirect_url:
        st.link_button(platform_of(link.platform).finish_label, completion.redirect_url, type="primary")


def show_png(container, path, caption: str) -> None:
    """The study's blinded PNG exactly as built, byte for byte.

    st.image re-encodes what it is given as JPEG (quality 90) unless told PNG, and
    rescales anything wider than its content width (1460 px) unless given a pixel width;
    either would show participants other pixels than the study holds (and than the
    analysis assumes). "content": shown at its own size (one CSS pixel per image pixel),
    scaled down proportionally only where the column is narrower (a narrow screen)."""
    data = Path(path).read_bytes()
    width = struct.unpack(">I", data[16:20])[0] if data[:8] == b"\x89PNG\r\n\x1a\n" else 0
    container.image(data, caption=caption, output_format="PNG",
                    width="content" if width <= MAX_STRETCH_WIDTH else width)


def show_item(item, options: list[dict], *, key: str, on_answer=None) -> None:
    """One question exactly as a participant sees it.

    `on_answer(value)` is called when an option is clicked; without it (the researcher's
    preview) the buttons are shown disabled, so nothing can be stored.
    """
    st.progress(item.position / item.total, text=f"Question {item.position + 1} of {item.total}")
    st.markdown('<div class="pp-stimuli-gap"></div>', unsafe_allow_html=True)
    columns = st.columns(len(item.media))
    for column, path, caption in zip(columns, item.media, item.captions):
        show_png(column, path, caption)
    st.markdown(f"**{item.question}**")
    buttons = st.columns(len(options))
    for column, option in zip(buttons, options):
        if column.button(option["label"], key=f"{key}-{item.item_id}-{option['value']}", width="stretch",
                         disabled=on_answer is None) and on_answer is not None:
            on_answer(option["value"])


def _question(runner, participant_id: str, item) -> None:
    shown = st.session_state.setdefault("shown_at", {})
    shown.setdefault(item.item_id, time.monotonic())

    def answer(value: str) -> None:
        elapsed = int(1000 * (time.monotonic() - shown.pop(item.item_id, time.monotonic())))
        runner.record_answer(participant_id, item.item_id, value, response_ms=max(elapsed, 0))
        st.rerun()

    show_item(item, runner.options, key="answer", on_answer=answer)


def _media_check(runner, token: str) -> None:
    """Every picture of the study, drawn as a question draws it (`show_png`), each captioned
    with its file name: the page `python -m study check` opens in a headless browser to
    fetch what participants are served (study/media_probe.py). Only the holder of the
    study folder knows the token (derived from the private key)."""
    from study.media_probe import media_check_token

    study = runner.study
    expected = media_check_token(study.root / "private" / "key.json", study.root.name)
    if not hmac.compare_digest(str(token), expected):
        raise StudyError("This study link is not valid.")
    names = sorted({m for item in study.items.values() for m in item["media"]})
    for name in names:
        show_png(st, study.media_path(name), name)
    st.markdown(f'<span data-media-done="{len(names)}"></span>', unsafe_allow_html=True)


# The page is Streamlit's wide layout capped at PAGE_WIDTH (app/layout.py, shared with the
# lean page app/lean/). The image toolbar (fullscreen) sits above an image's top edge: the gap above the images
# keeps it off the progress bar.
STYLE = f"""<style>
[data-testid="stMainBlockContainer"] {{ max-width: {PAGE_WIDTH}px; padding-left: 1.5rem; padding-right: 1.5rem; }}
.pp-stimuli-gap {{ height: 1.75rem; }}
</style>"""


def render(workspace: Workspace, params: dict) -> None:
    st.markdown(STYLE, unsafe_allow_html=True)
    study_id = params.get("study", "")
    declined = st.session_state.setdefault("declined", {})
    try:
        runner = runner_for(workspace, study_id)
        if "media_check" in params:
            _media_check(runner, params["media_check"])
            return
        link = parse_link(params)
        participant = None if study_id in declined else runner.find(**link.start_kwargs())
    except StudyError as exc:
        st.error(participant_message(exc))   # app/errors.py: no server path reaches a participant
        return
    wording = runner.wording
    st.title(wording["title"])
    if study_id in declined:
        _declined(declined[study_id], link)
        return
    try:
        started = participant is not None and participant.status != "invited"
        if started and participant.status in ("finished", "screened_out"):
            _done(runner, participant.participant_id, link)
            return
        answered = runner.progress(participant.participant_id)[0] if started else 0
        stages = st.session_state.setdefault("stage", {})
        key = _stage_key(link.platform, link.token, link.worker_id)
        stage = stages.setdefault(key, "consent" if answered == 0 else "questions") if started else "consent"
        if stage == "consent":
            _consent(runner, link, participant, stages, declined, study_id)
            return
        pid = participant.participant_id
        if stage == "instructions":
            st.write(wording["instructions"])
            if st.button(wording["next_button"], type="primary", key="instructions"):
                stages[key] = "questions"
                st.rerun()
            return
        item = runner.next_item(pid)
        if item is None:
            _done(runner, pid, link)
        else:
            _question(runner, pid, item)
    except StudyError as exc:
        st.error(participant_message(exc))   # app/errors.py: no server path reaches a participant
