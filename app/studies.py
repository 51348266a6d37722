"""Opening studies of the workspace: one cached `StudyRunner` per study build.

Why cached: opening a runner reads the study folder and connects to the answer store;
doing it once per process keeps a question-to-question step fast. The cache key holds
the modification time of `study.json`, so a rebuilt study gets a fresh runner.
"""
from __future__ import annotations

import streamlit as st

from app.workspace import Workspace
from common.names import is_study_id
from study.errors import StudyError


@st.cache_resource(show_spinner=False, max_entries=64)
def _runner(study_dir: str, db: str | None, mtime: float):
    from study.session import StudyRunner

    return StudyRunner.open(study_dir, db=db)


def runner_for(workspace: Workspace, study_id: str):
    """The runner of `study_id`; a malformed or unknown id is a StudyError (shown as is)."""
    if not is_study_id(study_id) or study_id not in workspace.study_ids():
        raise StudyError("This study link is not valid.")
    folder = workspace.studies / study_id
    return _runner(str(folder), workspace.db, (folder / "study.json").stat().st_mtime)


def choose_study(workspace: Workspace, key: str) -> str | None:
    """A study picker shared by the researcher pages; None (with a hint) when there is none."""
    ids = workspace.study_ids()
    if not ids:
        st.info(f"No study in {workspace.studies}. Build one on the Study builder page "
                "or with `python -m study build SPEC --out studies/ID`.")
        return None
    return st.selectbox("Study", ids, key=key)


def choose_runner(workspace: Workspace, key: str):
    """A study picker that opens the chosen study's runner; None (with the reason shown) otherwise."""
    study_id = choose_study(workspace, key=key)
    if study_id is None:
        return None
    try:
        return runner_for(workspace, study_id)
    except StudyError as exc:
        st.error(str(exc))
        return None
