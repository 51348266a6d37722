"""Study builder: a form over the study spec, the build, and a participant-eye preview.

The form writes an ordinary spec file (specs/ID.yaml, the same YAML `python -m study
build` reads) and calls `study.build.build_study`, so a study made here can be rebuilt
and scripted from the command line. The spec is written next to its final name and
renamed only when the build succeeded, so a refused spec leaves nothing behind.
"""
from __future__ import annotations

import os
import tempfile

import streamlit as st
import yaml

from app.participant import show_item
from app.workspace import Workspace
from study.errors import StudyError
from study.kinds import KINDS, REGISTRY
from study.session import preview


def spec_from_form(values: dict) -> dict:
    """The spec mapping for the form's values (atlas paths relative to specs/)."""
    spec = {"id": values["id"], "kind": values["kind"], "seed": int(values["seed"]),
            "methods": [f"../atlases/{name}" for name in values["atlases"]],
            "pool_size": int(values["pool_size"]), "items_per_version": int(values["items_per_version"]),
            "versions": int(values["versions"]), "order": values["order"],
            "attention": {"count": int(values["attention"]), "max_failures": int(values["max_failures"])}}
    codes = {k: values[k].strip() for k in ("completion", "screen_out") if values.get(k, "").strip()}
    if codes:
        spec["codes"] = codes
    if values.get("question", "").strip():
        spec["wording"] = {"question": values["question"].strip()}
    for field in sorted(REGISTRY[values["kind"]].spec_fields):   # the kind's own fields, as YAML
        text = str(values.get(option_key(values["kind"], field), "")).strip()
        if text:
            try:
                spec[field] = yaml.safe_load(text)
            except yaml.YAMLError:
                raise StudyError(f"field {field!r}: {text!r} is not a value") from None
    return spec


def option_key(kind: str, field: str) -> str:
    """The form key of a kind's own spec field (`QuestionKind.spec_fields`)."""
    return f"kind_option_{kind}_{field}"


def build_from_spec(workspace: Workspace, spec: dict, overwrite: bool, progress=None):
    """Write specs/ID.yaml and build studies/ID; the spec file appears only on success."""
    from study.build import build_study

    workspace.specs.mkdir(parents=True, exist_ok=True)
    final = workspace.specs / f"{spec['id']}.yaml"
    fd, tmp = tempfile.mkstemp(prefix=f".{spec['id']}.", suffix=".yaml", dir=workspace.specs)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(spec, fh, sort_keys=False)
        out = build_study(tmp, workspace.studies / spec["id"], overwrite=overwrite, progress=progress)
        os.replace(tmp, final)
        return out
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _form(workspace: Workspace) -> None:
    atlases = workspace.atlas_names()
    if not atlases:
        st.info(f"No atlas in {workspace.atlases}: build or import one first.")
        return
    with st.form("study_form"):
        c1, c2, c3 = st.columns(3)
        values = {
            "id": c1.text_input("Study id (letters, digits, - and _; must not name a method)", "my-study"),
            "kind": c2.selectbox("Kind", KINDS, format_func=lambda k: REGISTRY[k].title),
            "seed": c3.number_input("Seed", 0, 2**31 - 1, 0),
            "atlases": st.multiselect("Methods (atlases)", atlases, default=atlases[:1]),
        }
        c1, c2, c3, c4 = st.columns(4)
        values["pool_size"] = c1.number_input("Pool size per (data set, method)", 1, 10000, 10)
        values["items_per_version"] = c2.number_input("Items per version per combination", 1, 10000, 4)
        values["versions"] = c3.number_input("Versions", 1, 10000, 2)
        values["order"] = c4.selectbox("Order", ["random", "latin-square"])
        c1, c2, c3, c4 = st.columns(4)
        values["attention"] = c1.number_input("Attention checks", 0, 100, 1)
        values["max_failures"] = c2.number_input("Allowed failures", 0, 100, 0)
        values["completion"] = c3.text_input("Completion code (empty: drawn from the seed)", "")
        values["screen_out"] = c4.text_input("Screen-out code (empty: drawn from the seed)", "")
        values["question"] = st.text_input("Question (empty: the default wording of the kind)", "")
        for kind in KINDS:   # every kind's own spec fields; only the chosen kind's are used
            for field in sorted(REGISTRY[kind].spec_fields):
                key = option_key(kind, field)
                values[key] = st.text_input(f"{REGISTRY[kind].title} — {field} (used only for this kind; "
                                            "empty: its default)", "", key=key)
        overwrite = st.checkbox("Replace an existing study of this id (refused once it holds answers)")
        submitted = st.form_submit_button("Build study", type="primary")
    if not submitted:
        return
    if not values["atlases"]:
        st.error("Choose at least one atlas.")
        return
    try:
        spec = spec_from_form(values)
    except StudyError as exc:
        st.error(str(exc))
        return
    bar = st.progress(0.0, text="Rendering media")
    try:
        out = build_from_spec(workspace, spec, overwrite,
                              progress=lambda n, total: bar.progress(n / max(total, 1), text=f"Media {n}/{total}"))
    except StudyError as exc:
        bar.empty()
        st.error(str(exc))
        return
    bar.empty()
    st.success(f"Built {out}. Preview it below, then share its links on “Run and monitor”.")
    st.code(yaml.safe_dump(spec, sort_keys=False), language="yaml")


def _preview(workspace: Workspace) -> None:
    from study.folder import open_study

    ids = workspace.study_ids()
    if not ids:
        st.info("No study built yet.")
        return
    c1, c2, c3 = st.columns(3)
    study_id = c1.selectbox("Study", ids, key="preview_study")
    try:
        study = open_study(workspace.studies / study_id)
    except StudyError as exc:
        st.error(str(exc))
        return
    version = int(c2.number_input("Version", 0, len(study.versions) - 1, 0, key="preview_version"))
    length = len(study.versions[version])
    count = c3.number_input("Questions", 1, length, min(3, length), key="preview_count")
    st.caption("Exactly what a participant sees; the buttons are disabled and nothing is stored.")
    with st.container(border=True):
        wording = study.wording
        st.title(wording["title"])
        st.write(wording["consent"])
        st.button(wording["consent_button"], disabled=True, key="preview_consent")
        st.write(wording["instructions"])
        for item in preview(study, version, int(count)):
            st.divider()
            show_item(item, study.options, key="preview")


def render(workspace: Workspace) -> None:
    st.header("Study builder")
    mode = st.radio("Show", ["Build", "Preview"], horizontal=True, key="builder_view")
    if mode == "Build":
        _form(workspace)
    else:
        _preview(workspace)
