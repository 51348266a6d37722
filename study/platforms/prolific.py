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

import re
from collections.abc import Mapping
from urllib.parse import quote

from study.errors import StudyError

COMPLETE_URL = "https://app.prolific.com/submissions/complete?cc="
_PLATFORM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
RETURN_MESSAGE = ("Please return your submission on Prolific (\"Return submission\" on the study's page), "
                  "so that the place goes to someone else.")


def study_url(base_url: str, study_id: str) -> str:
    """The URL to enter in Prolific's study setup."""
    return (f"{base_url.rstrip('?')}?study={study_id}&PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
            f"&STUDY_ID={{{{%STUDY_ID%}}}}&SESSION_ID={{{{%SESSION_ID%}}}}")


def completion_url(code: str) -> str:
    """Where Prolific takes a finished (or screened-out, or not consenting) participant's code."""
    return COMPLETE_URL + quote(code, safe="")


def parse_prolific(study_id: str, params: Mapping, name: str = "prolific"):
    """The Link of a Prolific URL (PROLIFIC_PID given), or None for any other link."""
    from study.platforms.local import Link, _one
    pid = _one(params, "PROLIFIC_PID")
    if pid is None:
        return None
    token = _one(params, "token")
    if token is not None:
        from study.platforms.local import _TOKEN
        if not _TOKEN.match(token):
            raise StudyError("link: parameter 'token' is malformed")
    values = {"PROLIFIC_PID": pid, "STUDY_ID": _one(params, "STUDY_ID") or "",
              "SESSION_ID": _one(params, "SESSION_ID") or ""}
    for key, value in values.items():
        if value and not _PLATFORM_ID.match(value):
            raise StudyError(f"link: parameter {key!r} is malformed")
        if "{{" in value or "%" in value:
            raise StudyError(f"link: parameter {key!r} still holds Prolific's placeholder")
    return Link(study_id, name, None, pid, values["STUDY_ID"], values["SESSION_ID"])
