"""No page shows a traceback: every error reaching a page becomes one line.

`show_errors(render, *args)` runs a page (every researcher page and the participant flow
go through it, app/main.py) and turns an exception into one `st.error` line:

- the toolkit's own errors (`common.errors.ToolkitError`: `core.errors.*`,
  `study.errors.StudyError`, `UploadError`, ...) already name the file, field or value
  and the fix: shown as they are;
- a missing or unreadable file, malformed JSON or YAML: the file (or position) and what
  is wrong;
- anything else is a bug: one line with its type, and the traceback goes to the app's
  log (the terminal running `python -m app`), never to the page.

A participant sees the toolkit's study messages (an invalid link, a used token) and, for
anything else, including a study error that names a server file (a broken study folder),
a neutral line: server paths and artifact names stay private; the details go to the log.
Streamlit's own control flow (`st.stop`, `st.rerun`) derives from BaseException and
passes through untouched.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import sqlite3

log = logging.getLogger("protoproto.app")

MAX_CHARS = 400
SERVER_PATH = re.compile(r"(?:^|[\s'\"(])/[^\s/'\"]+/")   # an absolute path with a folder in it
PARTICIPANT_MESSAGE = ("Something went wrong on our side. Please reload the page in a minute; "
                       "if it happens again, contact the researcher.")


def _known() -> tuple[type[BaseException], ...]:
    from common.errors import ToolkitError

    return (ToolkitError,)


def one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_CHARS else line[:MAX_CHARS - 1] + "…"


def _is_sqlalchemy(exc: BaseException) -> bool:
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - a dependency of study.store
        return False
    return isinstance(exc, SQLAlchemyError)


def message(exc: BaseException) -> str:
    """The one line a researcher sees for `exc`."""
    try:
        import yaml
        yaml_error: tuple[type[BaseException], ...] = (yaml.YAMLError,)
    except ImportError:  # pragma: no cover - yaml is a dependency
        yaml_error = ()
    if isinstance(exc, _known()):
        return one_line(str(exc) or type(exc).__name__)
    if isinstance(exc, FileNotFoundError):
        return one_line(f"{exc.filename or exc}: file not found (was it moved or deleted? rebuild it or "
                        "choose another)")
    if isinstance(exc, PermissionError):
        return one_line(f"{exc.filename or exc}: permission denied (check who owns the file)")
    if isinstance(exc, IsADirectoryError | NotADirectoryError):
        return one_line(f"{exc.filename or exc}: {exc.strerror or 'not the expected kind of path'}")
    if isinstance(exc, OSError):
        return one_line(f"{exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}")
    if isinstance(exc, json.JSONDecodeError):
        return one_line(f"not readable JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
    if yaml_error and isinstance(exc, yaml_error):
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        name = f"{mark.name}: " if mark is not None and mark.name and not mark.name.startswith("<") else ""
        return one_line(f"{name}not readable YAML: {getattr(exc, 'problem', None) or exc}{where}")
    if isinstance(exc, sqlite3.Error) or _is_sqlalchemy(exc):
        orig = getattr(exc, "orig", None) or exc   # SQLAlchemy wraps the driver's error with the SQL text
        return one_line(f"answer store: {type(orig).__name__}: {orig} (is the study's answers.sqlite, or "
                        "PROTOPROTO_DB, a database written by this toolkit?)")
    return one_line(f"Unexpected error ({type(exc).__name__}: {exc}). This is a bug; the details are in "
                    "the app's log.")


def participant_message(exc: BaseException) -> str:
    """The one line a participant sees for `exc`: a study message as it is, anything else
    (a bug, a study error naming a server file) the neutral line, with the details logged."""
    from study.errors import StudyError

    if isinstance(exc, StudyError) and not SERVER_PATH.search(str(exc)):
        return one_line(str(exc))
    log.error("error on a participant page", exc_info=exc)
    return PARTICIPANT_MESSAGE


def show_errors(render, *args, participant: bool = False, **kwargs) -> bool:
    """Run `render(*args, **kwargs)`; an exception becomes one `st.error` line.
    True when it ran through, False when an error was shown."""
    import streamlit as st   # here, not at the top: the lean page (app/lean/) uses this module without Streamlit

    try:
        render(*args, **kwargs)
        return True
    except Exception as exc:  # noqa: BLE001 - the point: nothing reaches the page as a traceback
        if participant:
            st.error(participant_message(exc))
            return False
        if not isinstance(exc, _known()):
            log.error("error on a researcher page", exc_info=exc)
        st.error(message(exc))
        return False


def guarded(render):
    """`render` wrapped by `show_errors` (for st.fragment functions, which rerun on their own)."""
    @functools.wraps(render)
    def wrapper(*args, **kwargs):
        show_errors(render, *args, **kwargs)
    return wrapper
