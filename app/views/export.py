"""Export: the Mechanical Turk batch as a zip, and the answers as the long CSV.

Both are the command line's writers (`study.platforms.mturk_export.export_mturk`,
`study.export.answer_rows`/`to_csv`); the page only packs their output for download.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from app.studies import choose_runner
from app.workspace import Workspace
from study.errors import StudyError


def zip_folder(folder: Path) -> bytes:
    """The folder's files in a zip (paths relative to the folder, sorted, fixed dates)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(folder)), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def mturk_zip(study, base_url: str) -> bytes:
    from study.platforms.mturk_export import export_mturk

    with tempfile.TemporaryDirectory() as tmp:
        out = export_mturk(study, base_url, Path(tmp) / f"mturk-{study.id}")
        return zip_folder(out)


def answers_csv(runner, blinded: bool) -> tuple[str, int]:
    from study.export import answer_rows, to_csv

    rows = answer_rows(runner.study, runner.store, blinded=blinded)
    return to_csv(rows, blinded), len(rows)


def render(workspace: Workspace) -> None:
    st.header("Export")
    runner = choose_runner(workspace, key="export_study")
    if runner is None:
        return
    study_id = runner.study.root.name  # the folder name is what links carry

    st.subheader("Answers (long CSV, FORMATS.md §6)")
    blinded = st.checkbox("Blinded (drop the method and pair-source columns)", key="export_blinded")
    text, n = answers_csv(runner, blinded)
    st.caption(f"{n} answers stored.")
    st.download_button("Download answers CSV", text.encode("utf-8"), key="export_answers",
                       file_name=f"{study_id}-answers{'-blinded' if blinded else ''}.csv", mime="text/csv")

    st.subheader("Mechanical Turk batch")
    from study.platforms.mturk_export import status_note

    st.caption(f"{status_note()} The batch format still serves existing accounts and archives.")
    base = st.text_input("URL where the batch's media/ folder will be hosted", "https://example.org/media/",
                         key="export_mturk_base")
    if st.button("Prepare the batch", key="export_mturk_build"):
        try:
            st.session_state["export_mturk_zip"] = (study_id, base, mturk_zip(runner.study, base))
        except StudyError as exc:
            st.error(str(exc))
    ready = st.session_state.get("export_mturk_zip")
    if ready and ready[:2] == (study_id, base):
        st.download_button("Download the batch (zip)", ready[2], file_name=f"mturk-{study_id}.zip",
                           mime="application/zip", key="export_mturk_download")
