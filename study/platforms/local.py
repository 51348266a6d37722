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


@dataclass(frozen=True)
class Link:
    study_id: str
    platform: str                 # a name of study.platforms.registry.PLATFORMS
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
    from study.platforms.registry import REGISTRY
    for platform in REGISTRY.values():
        link = platform.parse(study_id, params)
        if link is not None:
            return link
    raise StudyError("link: no platform takes it")   # unreachable: local takes every link


def personal_link(base_url: str, study_id: str, token: str) -> str:
    return f"{base_url.rstrip('?')}?{urlencode({'study': study_id, 'token': token})}"


def open_link(base_url: str, study_id: str) -> str:
    return f"{base_url.rstrip('?')}?{urlencode({'study': study_id})}"
