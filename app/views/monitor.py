"""Run and monitor: the links to hand out and live counts from the answer store."""
from __future__ import annotations

from collections import Counter

import pandas as pd
import streamlit as st

from app.errors import guarded
from app.studies import choose_runner
from app.workspace import Workspace


def study_counts(runner) -> dict:
    """Started, finished, screened out, answers and attention failures of one study (the
    totals of `python -m study status`, study/status.py)."""
    from study.status import study_status

    totals = study_status(runner.study, runner.store)["totals"]
    return {key: totals[key] for key in ("invited", "started", "active", "finished", "screened_out", "answers",
                                         "attention_failures")}


def _minute(stamp) -> str:
    """'2026-12-07T19:47:23.008Z' -> '2026-12-07 19:47:23': the table fits a 1300 px window."""
    return "" if not stamp else str(stamp).replace("T", " ").split(".")[0].rstrip("Z")


def participants_table(runner) -> pd.DataFrame:
    """One row per participant, without anything that names a method."""
    answered = Counter(r["participant_id"] for r in runner.store.export_rows(runner.study.id))
    total = {v: len(seq) for v, seq in enumerate(runner.study.versions)}
    rows = [{"participant": p["participant_id"], "platform": p["platform"], "worker": p["worker_id"],
             "version": p["version"], "status": p["status"],
             "answered": f"{answered.get(p['participant_id'], 0)}/{total.get(p['version'], '?')}",
             "attention failures": p["attention_failures"], "started (UTC)": _minute(p["started_at"]),
             "finished (UTC)": _minute(p["finished_at"])} for p in runner.store.participants_of(runner.study.id)]
    return pd.DataFrame(rows)


def render(workspace: Workspace) -> None:
    from study.platforms.local import open_link, personal_link
    from study.platforms.prolific import study_url

    st.header("Run and monitor")
    runner = choose_runner(workspace, key="monitor_study")
    if runner is None:
        return
    study_id = runner.study.root.name  # the folder name is what links carry
    base = st.text_input("Public address of this app", workspace.base_url, key="monitor_base")
    st.markdown("**Open link** (each visitor becomes a new participant)")
    st.code(open_link(base, study_id), language=None, wrap_lines=True)
    st.markdown("**Prolific study URL** (paste into Prolific; it fills the `{{%…%}}` placeholders)")
    st.code(study_url(base, study_id), language=None, wrap_lines=True)
    codes = runner.study.manifest["codes"]
    st.markdown(f"Prolific completion code **{codes['completion']}**, screen-out code **{codes['screen_out']}**")
    with st.form("invite"):
        n = st.number_input("Personal links to create", 1, 1000, 5)
        if st.form_submit_button("Create personal links"):
            st.session_state["monitor_links"] = [personal_link(base, study_id, t) for t in runner.invite(int(n))]
    if st.session_state.get("monitor_links"):
        st.code("\n".join(st.session_state["monitor_links"]), language=None, wrap_lines=True)

    st.subheader("Live counts")
    auto = st.toggle("Refresh every 5 seconds", key="monitor_auto")
    # a fragment reruns on its own, outside the page's error wrapper: guarded gives it its own
    st.fragment(run_every=5 if auto else None)(guarded(_live))(runner)


def _live(runner) -> None:
    """The counts and the participant table; a fragment, so auto-refresh reruns only this."""
    st.button("Refresh", key="monitor_refresh")
    counts = study_counts(runner)
    cols = st.columns(5)
    cols[0].metric("Started", counts["started"])
    cols[1].metric("Finished", counts["finished"])
    cols[2].metric("Answers", counts["answers"])
    cols[3].metric("Attention failures", counts["attention_failures"])
    cols[4].metric("Screened out", counts["screened_out"])
    table = participants_table(runner)
    if len(table):
        st.dataframe(table, hide_index=True, width="stretch")
