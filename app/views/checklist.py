"""Launch checklist: the checks of `python -m study check` and what a participant will see.

The page only calls `study.launch_check` (the command line's code) and draws its result:
one line per check, the problems under it, and the participant's pages as text. The app
checks itself as participants reach it: the media of a local or Prolific study through
the participant page at the public address (a headless browser session); the Mechanical
Turk media host only when one is given.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import streamlit as st

from app.studies import choose_runner
from app.workspace import Workspace


def render(workspace: Workspace) -> None:
    from study.launch_check import preview_text, run_checks

    st.header("Launch checklist")
    runner = choose_runner(workspace, key="check_study")
    if runner is None:
        return
    study = runner.study
    base = st.text_input("Public address of this app", workspace.base_url, key="check_base")
    media = st.text_input("Where media/ is hosted for Mechanical Turk (empty: not checked)", "", key="check_media")
    st.caption("The checks request every link from this machine and open the participant page in a headless "
               "browser to fetch every picture as participants get it; use the addresses participants will use.")
    if st.button("Run the checks", type="primary", key="check_run"):
        with st.spinner("Checking links, codes, media, attention checks and the MTurk page size..."):
            # its own thread: the browser session (Playwright) must not share this script's thread
            with ThreadPoolExecutor(max_workers=1) as pool:
                checks = pool.submit(run_checks, study, base or None, media or None, 10.0).result()
            st.session_state["check_result"] = (study.root.name, base, media, checks)
    result = st.session_state.get("check_result")
    if result and result[:3] == (study.root.name, base, media):
        checks = result[3]
        failed = [c.name for c in checks if c.ok is False]
        if failed:
            st.error(f"Not ready: {', '.join(failed)} failed.")
        else:
            st.success("Ready: no check failed.")
        for check in checks:
            line = f"**{check.name}** — {check.summary}"
            {True: st.success, False: st.error, None: st.info}[check.ok](line)
            if check.problems:
                st.markdown("\n".join(f"- {p}" for p in check.problems[:50])
                            + (f"\n- ... and {len(check.problems) - 50} more" if len(check.problems) > 50 else ""))
    st.subheader("What a participant will see")
    st.code(preview_text(study, 3), language=None, wrap_lines=True)
