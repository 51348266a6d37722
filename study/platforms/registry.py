"""The registry of crowd platforms: local (own links), Prolific, Mechanical Turk.

One interface for what differs between them: how a link is recognised and parsed back,
who resumes by worker id, where a finished (or screened-out, or declining) participant is
sent with their code, what the participant is told to do with it, and how answers come in
(live through the app, or imported from a results file). The participant flow
(study/session.py, app/participant.py, study/launch_check.py) asks the platform object and
never compares a platform's name. Adding a platform: a module under study/platforms/ with
one `Platform` subclass instance and one line in REGISTRY.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from study.errors import StudyError


class Platform:
    name: ClassVar[str]
    title: ClassVar[str]
    resumes_by_worker_id: ClassVar[bool] = False   # the same worker id resumes the same participant
    uses_tokens: ClassVar[bool] = False            # links carry a personal token (kept in the URL)
    answers_live: ClassVar[bool] = True            # answers come through the app (else: imported)
    return_label: ClassVar[str] = ""               # the button that sends a declining participant back
    finish_label: ClassVar[str] = ""               # the button that sends a finished participant back

    def parse(self, study_id: str, params: Mapping):
        """A study.platforms.local.Link when `params` are this platform's, else None."""
        return None

    def completion_url(self, code: str) -> str | None:
        """Where a participant who finished (or was screened out) goes with `code`."""
        return None

    def decline(self, message: str, code: str) -> tuple[str, str, str | None]:
        """(code, message, redirect) for a participant who answered "I do not agree"."""
        return "", message, None

    def example_link(self, base_url: str, study_id: str) -> str | None:
        """A link as participants of this platform open it (for the launch check), or None."""
        return None

    def link_query(self, link, token: str | None = None) -> dict[str, str]:
        """The query parameters that identify `link`'s participant on later pages (a page's
        forms carry them on); `token`: the participant's token once one was given."""
        return {"study": link.study_id}


class Local(Platform):
    name = "local"
    title = "own links (personal or open)"
    uses_tokens = True

    def parse(self, study_id, params):
        from study.platforms.local import Link, _one, _TOKEN
        token = _one(params, "token")
        if token is not None and not _TOKEN.match(token):
            raise StudyError("link: parameter 'token' is malformed")
        return Link(study_id, self.name, token)

    def example_link(self, base_url, study_id):
        from study.platforms.local import open_link
        return open_link(base_url, study_id)

    def link_query(self, link, token=None):
        fields = {"study": link.study_id}
        if token or link.token:
            fields["token"] = token or link.token or ""
        return fields


class Prolific(Platform):
    name = "prolific"
    title = "Prolific (PROLIFIC_PID, STUDY_ID, SESSION_ID; completion by redirect)"
    resumes_by_worker_id = True
    return_label = "Return to Prolific"
    finish_label = "Return to Prolific to finish"

    def parse(self, study_id, params):
        from study.platforms.prolific import parse_prolific
        return parse_prolific(study_id, params, self.name)

    def completion_url(self, code):
        from study.platforms.prolific import completion_url
        return completion_url(code)

    def decline(self, message, code):
        from study.platforms.prolific import RETURN_MESSAGE, completion_url
        return code, f"{message} {RETURN_MESSAGE}", completion_url(code) if code else None

    def example_link(self, base_url, study_id):
        from study.platforms.prolific import study_url
        return study_url(base_url, study_id).replace("{{%PROLIFIC_PID%}}", "5f0c0ffee0123456789abcde") \
            .replace("{{%STUDY_ID%}}", "st1").replace("{{%SESSION_ID%}}", "se1")

    def link_query(self, link, token=None):
        return {"study": link.study_id, "PROLIFIC_PID": link.worker_id, "STUDY_ID": link.platform_study_id,
                "SESSION_ID": link.platform_session_id}


class MTurk(Platform):
    name = "mturk"
    title = "Mechanical Turk (batch export, results CSV import)"
    answers_live = False   # study/platforms/mturk_export.py, mturk_import.py


# link parsing asks each platform in this order; `local` takes whatever is left
REGISTRY: dict[str, Platform] = {p.name: p for p in (Prolific(), MTurk(), Local())}
PLATFORMS: tuple[str, ...] = tuple(REGISTRY)


def platform_of(name: str) -> Platform:
    try:
        return REGISTRY[name]
    except KeyError:
        raise StudyError(f"unknown platform {name!r} (known: {', '.join(PLATFORMS)})") from None
