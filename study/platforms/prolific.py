"""Prolific: the study URL to paste into Prolific, and the completion redirect.

Prolific replaces `{{%PROLIFIC_PID%}}`, `{{%STUDY_ID%}}` and `{{%SESSION_ID%}}` in the study
URL; `StudyRunner.start(platform="prolific", worker_id=PID, ...)` resumes the same PID.
On finishing, the participant is redirected to the completion URL with the study's
completion code; failing the attention checks gives the separate screen-out code
(set both codes in Prolific to the values in the spec / study.json).
"""
from __future__ import annotations

from study.session import PROLIFIC_COMPLETE


def study_url(base_url: str, study_id: str) -> str:
    """The URL to enter in Prolific's study setup."""
    return (f"{base_url.rstrip('?')}?study={study_id}&PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
            f"&STUDY_ID={{{{%STUDY_ID%}}}}&SESSION_ID={{{{%SESSION_ID%}}}}")


def completion_url(code: str) -> str:
    return PROLIFIC_COMPLETE + code
