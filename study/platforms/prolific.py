"""Prolific: the study URL to paste into Prolific, and the redirects back to it.

Prolific replaces `{{%PROLIFIC_PID%}}`, `{{%STUDY_ID%}}` and `{{%SESSION_ID%}}` in the study
URL; `StudyRunner.start(platform="prolific", worker_id=PID, ...)` resumes the same PID.
On finishing, the participant is redirected to the completion URL with the study's
completion code; failing the attention checks gives the separate screen-out code, and
answering "I do not agree" on the consent page gives the no-consent code together with
the request to return the submission (set all three codes in Prolific to the values in
the spec / study.json; give the no-consent code the action "request a return").
"""
from __future__ import annotations

from urllib.parse import quote

COMPLETE_URL = "https://app.prolific.com/submissions/complete?cc="
RETURN_MESSAGE = ("Please return your submission on Prolific (\"Return submission\" on the study's page), "
                  "so that the place goes to someone else.")


def study_url(base_url: str, study_id: str) -> str:
    """The URL to enter in Prolific's study setup."""
    return (f"{base_url.rstrip('?')}?study={study_id}&PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
            f"&STUDY_ID={{{{%STUDY_ID%}}}}&SESSION_ID={{{{%SESSION_ID%}}}}")


def completion_url(code: str) -> str:
    """Where Prolific takes a finished (or screened-out, or not consenting) participant's code."""
    return COMPLETE_URL + quote(code, safe="")
