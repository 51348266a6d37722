"""Links of a local or self-hosted study, and parsing them back (the app calls `parse_link`).

Formats the app accepts in its query string:
- personal link: `?study=ID&token=TOKEN`
- open link:     `?study=ID` (each visit creates a participant; the app then adds its
                 token to the URL so a reload resumes)
- Prolific:      `?study=ID&PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...`
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from common.names import STUDY_ID_RE
from study.errors import StudyError

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_PLATFORM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class Link:
    study_id: str
    platform: str                 # local | prolific
    token: str | None = None
    worker_id: str = ""           # PROLIFIC_PID
    platform_study_id: str = ""   # Prolific STUDY_ID
    platform_session_id: str = "" # Prolific SESSION_ID

    def start_kwargs(self) -> dict:
        """Keyword arguments for `StudyRunner.start`."""
        return dict(token=self.token, platform=self.platform, worker_id=self.worker_id,
                    platform_study_id=self.platform_study_id, platform_session_id=self.platform_session_id)


def _one(params: Mapping, name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    return None if value in (None, "") else str(value)


def parse_link(params: Mapping) -> Link:
    """Query parameters (a dict of str or list of str, e.g. Streamlit's st.query_params) -> Link."""
    study_id = _one(params, "study")
    if study_id is None:
        raise StudyError("link: parameter 'study' is missing")
    if not STUDY_ID_RE.match(study_id):
        raise StudyError(f"link: parameter 'study' is not a study id ({study_id[:40]!r})")
    pid = _one(params, "PROLIFIC_PID")
    token = _one(params, "token")
    if token is not None and not _TOKEN.match(token):
        raise StudyError("link: parameter 'token' is malformed")
    if pid is not None:
        values = {"PROLIFIC_PID": pid, "STUDY_ID": _one(params, "STUDY_ID") or "",
                  "SESSION_ID": _one(params, "SESSION_ID") or ""}
        for name, value in values.items():
            if value and not _PLATFORM_ID.match(value):
                raise StudyError(f"link: parameter {name!r} is malformed")
            if "{{" in value or "%" in value:
                raise StudyError(f"link: parameter {name!r} still holds Prolific's placeholder")
        return Link(study_id, "prolific", None, pid, values["STUDY_ID"], values["SESSION_ID"])
    return Link(study_id, "local", token)


def personal_link(base_url: str, study_id: str, token: str) -> str:
    return f"{base_url.rstrip('?')}?{urlencode({'study': study_id, 'token': token})}"


def open_link(base_url: str, study_id: str) -> str:
    return f"{base_url.rstrip('?')}?{urlencode({'study': study_id})}"
