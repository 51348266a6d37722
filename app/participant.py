"""The participant flow: consent → instructions → one question per page → code.

Everything here is what a participant sees, so it shows only the study's wording and
its blinded media; the study key and method names never reach this module's output.
State lives in the answer store, not in the browser session: every run starts from
`StudyRunner.start`, which resumes at the first unanswered question, and an answer is
committed by `record_answer` before the rerun that shows the next question.
"""
from __future__ import annotations

import time

import streamlit as st

from app.studies import runner_for
from app.workspace import Workspace
from study.errors import StudyError
from study.platforms.local import parse_link


def _start(runner, params: dict):
    """Start or resume from the link's parameters; an open link gets its token in the URL."""
    link = parse_link(params)
    participant = runner.start(**link.start_kwargs())
    if link.platform == "local" and link.token != participant.token:
        st.query_params["token"] = participant.token
    return participant


def _done(runner, participant_id: str) -> None:
    completion = runner.finish(participant_id)
    if completion.status == "finished":
        st.success(completion.message)
    else:
        st.warning(completion.message)
    st.markdown(f"Your completion code: **{completion.code}**")
    if completion.redirect_url:
        st.link_button("Return to Prolific to finish", completion.redirect_url, type="primary")


def show_item(item, options: list[dict], *, key: str, on_answer=None) -> None:
    """One question exactly as a participant sees it.

    `on_answer(value)` is called when an option is clicked; without it (the researcher's
    preview) the buttons are shown disabled, so nothing can be stored.
    """
    st.progress(item.position / item.total, text=f"Question {item.position + 1} of {item.total}")
    columns = st.columns(len(item.media))
    for column, path, caption in zip(columns, item.media, item.captions):
        column.image(str(path), caption=caption, width="stretch")
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


def render(workspace: Workspace, params: dict) -> None:
    try:
        runner = runner_for(workspace, params.get("study", ""))
        participant = _start(runner, params)
    except StudyError as exc:
        st.error(str(exc))
        return
    wording = runner.wording
    st.title(wording["title"])
    pid = participant.participant_id
    try:
        if participant.status in ("finished", "screened_out"):
            _done(runner, pid)
            return
        answered, _total = runner.progress(pid)
        stages = st.session_state.setdefault("stage", {})
        stage = stages.setdefault(pid, "consent" if answered == 0 else "questions")
        if stage == "consent":
            st.write(wording["consent"])
            if st.button(wording["consent_button"], type="primary", key="consent"):
                stages[pid] = "instructions"
                st.rerun()
            return
        if stage == "instructions":
            st.write(wording["instructions"])
            if st.button(wording["next_button"], type="primary", key="instructions"):
                stages[pid] = "questions"
                st.rerun()
            return
        item = runner.next_item(pid)
        if item is None:
            _done(runner, pid)
        else:
            _question(runner, pid, item)
    except StudyError as exc:
        st.error(str(exc))
