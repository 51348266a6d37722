"""Streamlit entry point (`streamlit run app/main.py`, started by `python -m app`).

Two doors, decided by the link:
- a participant link (`?study=ID&token=...` or Prolific's `?study=ID&PROLIFIC_PID=...`)
  opens the participant flow and nothing else: no sidebar, no researcher page;
- anything else is the researcher workspace, behind a password.

The researcher pages live in `app/views/`, not `app/pages/`: Streamlit serves every
script of a `pages/` folder next to the entry point as its own URL, which would bypass
both doors.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts app/ on the path, not the repository
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import auth  # noqa: E402
from app.errors import show_errors  # noqa: E402  (every page: one error line, never a traceback)
from app.workspace import current  # noqa: E402

params = st.query_params
if "study" in params:
    # wide, capped by app/participant.py's style: stimuli at their native size on a 1300 px screen
    st.set_page_config(page_title="Questionnaire", layout="wide", initial_sidebar_state="collapsed")
    from app import participant

    show_errors(participant.render, current(), dict(params), participant=True)
    st.stop()

st.set_page_config(page_title="Prototype studies — researcher", layout="wide")

if not st.session_state.get("researcher"):
    st.title("Researcher sign-in")
    expected = auth.configured_password()
    with st.form("signin"):
        candidate = st.text_input("Password", type="password", key="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        keys = auth.signin_keys(st.context, st.session_state)   # backoff per session, address, account
        wait = auth.GUARD.wait_s(keys)
        if wait > 0:                                             # locked: the password is not checked
            st.error(auth.wait_message(wait))
        elif auth.check(candidate, expected):
            auth.GUARD.succeeded(keys)
            st.session_state["researcher"] = True
            st.rerun()
        elif not expected:
            st.error("No researcher password is configured.")
        else:
            wait = auth.record_failure(keys)                      # counted and logged
            st.error("Wrong password." + (" " + auth.wait_message(wait) if wait > 0 else ""))
    st.stop()

from app.views import PAGES  # noqa: E402  (imported only once signed in)

workspace = current()
choice = st.sidebar.radio("Page", list(PAGES), key="page")
st.sidebar.caption(f"Workspace: {workspace.home}")
if st.sidebar.button("Sign out", key="signout"):
    st.session_state["researcher"] = False
    st.rerun()
show_errors(PAGES[choice], workspace)
