"""The researcher workspace in Streamlit's AppTest: sign-in, every page, the forms."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import app_helpers

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
PAGES = ["Models", "Explain an image", "Sharing", "Study builder", "Launch checklist", "Run and monitor", "Export",
         "Analysis"]


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A copy of the workspace in one folder, the app started from another (no page may
    depend on the current folder)."""
    ws = app_helpers.workspace(tmp_path / "elsewhere" / "ws")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("PROTOPROTO_HOME", str(ws))
    monkeypatch.setenv("PROTOPROTO_PASSWORD", app_helpers.PASSWORD)
    monkeypatch.delenv("PROTOPROTO_DB", raising=False)
    return ws


def signed_in(page: str | None = None) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    at.text_input(key="password").input(app_helpers.PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    if page:
        at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "title", "header", "subheader", "code", "error",
                                  "info", "success", "warning")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def answer_all(study_dir: Path, n_participants: int, seed: int = 0) -> None:
    """Participants answering through the real runner (what the participant pages call)."""
    from study.session import StudyRunner

    rng = random.Random(seed)
    runner = StudyRunner.open(study_dir)
    for _ in range(n_participants):
        p = runner.start()
        while (item := runner.next_item(p.participant_id)) is not None:
            info = runner.key[item.item_id]
            value = info["expected"] if info["kind"] == "attention" else rng.choice(runner.study.option_values)
            runner.record_answer(p.participant_id, item.item_id, value, response_ms=1500)
        runner.finish(p.participant_id)
    runner.store.close()


def test_wrong_password_shows_nothing_of_the_workspace(home):
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    assert [t.value for t in at.title] == ["Researcher sign-in"]
    at.text_input(key="password").input("not-the-password")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong password."]
    assert not at.sidebar.radio and not at.header
    assert "protopool" not in texts(at).lower()


def test_password_from_streamlit_secrets(home, monkeypatch):
    monkeypatch.delenv("PROTOPROTO_PASSWORD")
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.secrets["password"] = "from-secrets-456"
    at.run()
    at.text_input(key="password").input(app_helpers.PASSWORD)   # the environment's, not set now
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong password."]
    at.text_input(key="password").input("from-secrets-456")
    at.button[0].click().run()
    assert [h.value for h in at.header] == ["Models"]


def test_every_page_renders(home):
    at = signed_in()
    assert at.sidebar.radio(key="page").options == PAGES
    for page in PAGES:
        at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert [h.value for h in at.header] == [page]
        assert not at.error, (page, [e.value for e in at.error])


def test_models_class_and_prototype_views(home):
    at = signed_in("Models")
    assert at.selectbox(key="atlas").options == ["protopool-birds", "protopool-nofocal-birds"]
    atlas = json.loads((home / "atlases" / "protopool-birds" / "atlas.json").read_text())
    names = atlas["dataset"]["class_names"]
    for c in range(len(names)):
        at.selectbox(key="class").set_value(c).run()
        protos = [p for p in atlas["prototypes"] if c in p["classes"]]
        assert at.subheader[0].value == f"{names[c]}: {len(protos)} prototypes"
        # source patch + 5 nearest per prototype, plus the class's heatmap overlays
        heat = min(6, sum(1 for h in atlas["heatmaps"] if h["label"] == c))
        assert len(at.get("image")) == sum(1 + len(p["nearest"]) for p in protos) + heat
    at.radio(key="models_view").set_value("Prototype").run()
    shared = max(atlas["prototypes"], key=lambda p: len(p["classes"]))
    at.selectbox(key="prototype").set_value(shared["id"]).run()
    assert not at.exception
    body = texts(at)
    assert ", ".join(names[c] for c in shared["classes"]) in body
    assert "Naming evidence" in body
    assert [m.value for m in at.metric][-3] == shared["naming"]["status"]


def test_explain_page_sums_contributions(home):
    at = signed_in("Explain an image")
    at.selectbox(key="explain_true_class").set_value(1).run()
    images = at.selectbox(key="explain_index").options
    assert images and all(o.startswith("image ") for o in images)
    at.selectbox(key="explain_index").select_index(len(images) - 1).run()
    assert not at.exception
    names = json.loads((home / "atlases" / "protopool-birds" / "atlas.json").read_text())["dataset"]["class_names"]
    assert [c.value for c in at.caption if c.value.startswith("True class: ")] == [f"True class: {names[1]}"]
    body = texts(at)
    assert "= sum of" in body and at.metric[0].label == "Prediction"
    tables = at.dataframe
    assert len(tables) == 2  # the top classes, the "why" table
    why = tables[1].value
    assert {"prototype", "similarity", "weight", "contribution"} <= set(why.columns)
    line = next(m.value for m in at.markdown if "= sum of" in m.value)
    logit = float(line.split("logit ")[1].split(" ")[0])
    assert why["contribution"].sum() == pytest.approx(logit, abs=0.01)


def test_sharing_page_figures(home):
    at = signed_in("Sharing")
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # graph, distribution, shared table, assignment matrix, histogram
    atlas = json.loads((home / "atlases" / "protopool-birds" / "atlas.json").read_text())
    assert at.metric[0].value == str(len(atlas["prototypes"]))


def test_builder_builds_and_previews_without_storing(home):
    at = signed_in("Study builder")
    at.text_input[0].input("pilot-1")
    at.multiselect[0].set_value(["protopool-birds", "protopool-nofocal-birds"])
    at.number_input[1].set_value(4)   # pool size
    at.number_input[2].set_value(2)   # items per version
    build = "FormSubmitter:study_form-Build study"
    at.button(key=build).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (home / "studies" / "pilot-1" / "study.json").is_file()
    spec = (home / "specs" / "pilot-1.yaml").read_text()
    assert "pool_size: 4" in spec and not list((home / "specs").glob(".*"))

    # a refused spec (items per version above the pool) leaves no spec file and no study
    at.text_input[0].input("pilot-2")
    at.number_input[2].set_value(9)
    at.button(key=build).click().run()
    assert "items_per_version" in at.error[0].value
    assert not (home / "studies" / "pilot-2").exists() and not (home / "specs" / "pilot-2.yaml").exists()

    at.radio(key="builder_view").set_value("Preview").run()
    at.selectbox(key="preview_study").set_value("pilot-1").run()
    assert not at.exception
    study = json.loads((home / "studies" / "pilot-1" / "study.json").read_text())
    answer_buttons = [b for b in at.button if b.key and b.key.startswith("preview-")]
    assert answer_buttons and all(b.disabled for b in answer_buttons)
    assert len(answer_buttons) == 3 * len(study["options"])
    assert not (home / "studies" / "pilot-1" / "answers.sqlite").exists()


def test_monitor_counts_and_links(home):
    answer_all(home / "studies" / "demo-saliency", 2)
    at = signed_in("Run and monitor")
    at.selectbox(key="monitor_study").set_value("demo-saliency").run()
    codes = [c.value for c in at.code]
    assert codes[0] == "http://127.0.0.1:8501/?study=demo-saliency"
    assert codes[1] == ("http://127.0.0.1:8501/?study=demo-saliency&PROLIFIC_PID={{%PROLIFIC_PID%}}"
                        "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}")
    metrics = {m.label: m.value for m in at.metric}
    versions = json.loads((home / "studies" / "demo-saliency" / "versions.json").read_text())["versions"]
    assert metrics["Started"] == "2" and metrics["Finished"] == "2"
    assert metrics["Answers"] == str(len(versions[0]) + len(versions[1]))
    assert metrics["Attention failures"] == "0"
    at.button(key="FormSubmitter:invite-Create personal links").click().run()
    links = at.code[-1].value.splitlines()
    assert len(links) == 5 and all("&token=" in link for link in links)
    at.toggle(key="monitor_auto").set_value(True).run()
    assert not at.exception and {m.label: m.value for m in at.metric}["Finished"] == "2"


def test_export_answers_and_mturk(home):
    answer_all(home / "studies" / "demo-consistency", 1)
    at = signed_in("Export")
    at.selectbox(key="export_study").set_value("demo-consistency").run()
    assert "answers stored" in at.caption[0].value
    at.button(key="export_mturk_build").click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["export_mturk_zip"][0] == "demo-consistency"
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(at.session_state["export_mturk_zip"][2])).namelist()
    assert "input.csv" in names and "layout.html" in names and any(n.startswith("media/") for n in names)


def test_analysis_page_tables(home):
    answer_all(home / "studies" / "demo-saliency", 4)
    at = signed_in("Analysis")
    at.selectbox(key="analysis_study").set_value("demo-saliency").run()
    assert not at.exception
    assert "Primary analysis" in [s.value for s in at.subheader]
    # the primary result in words (the report's sentence), then a table with headed columns
    assert at.session_state["analysis_sentences"] and all(
        sentence.startswith(("Participants rated ", "The data do not show", "No conclusion"))
        for sentence in at.session_state["analysis_sentences"])
    shown = [m.value for m in at.markdown if m.value.startswith("**")]
    assert len(shown) == len(at.session_state["analysis_sentences"]) and "ProtoPool" in shown[0]
    assert list(at.table[0].value.columns)[:3] == ["Comparison", "Effect", "Estimate [95% CI]"]
    # the secondary tables: the HTML report's own sections, escaped and narrowed
    html = "".join(h.proto.body for h in at.get("html"))
    for heading in ("Exclusions", "Participant-level tests", "Answer-level test", "Counts of each score"):
        assert heading in html, heading
    assert "<script" not in html and "<table>" in html
    assert len(at.get("plotly_chart")) == 2
    assert at.selectbox(key="analysis_target").options == ["ProtoPool", "ProtoPool w/o focal"]
    assert (home / "reports" / "demo-saliency" / "answers.csv").is_file()
    caption = next(c.value for c in at.caption if "exported to" in c.value)   # no server path
    assert "exported to reports/demo-saliency/answers.csv in the workspace" in caption and str(home) not in caption


def test_top_prototypes_merges_the_slots_of_one_prototype():
    from app.views.explain import top_prototypes
    from core.explain.local import Contribution

    rows = [Contribution(3, 1.0, 1.0, 1.0, True), Contribution(3, 0.5, 1.0, 0.5, True),
            Contribution(1, 2.0, -0.9, -1.8, False), Contribution(2, 0.1, 1.0, 0.1, True)]
    top = top_prototypes(rows, 2)
    assert [(r.prototype, round(t, 3)) for r, t in top] == [(1, -1.8), (3, 1.5)]


def test_builder_shows_each_kinds_own_spec_fields_and_writes_the_chosen_ones(home):
    from app.views.builder import option_key
    from study.kinds import REGISTRY

    at = signed_in("Study builder")
    own = {(k, f) for k, kind in REGISTRY.items() for f in kind.spec_fields}
    assert ("hive_distinction", "panels") in own and ("hive_distinction", "pick") in own
    for kind, field in own:          # one input per kind's declared field, labelled with it
        assert field in at.text_input(key=option_key(kind, field)).label
    at.text_input[0].input("hive-3")
    next(s for s in at.selectbox if s.label == "Kind").set_value("hive_distinction")
    at.multiselect[0].set_value(["protopool-birds", "protopool-nofocal-birds"])
    at.number_input[1].set_value(4)   # pool size
    at.number_input[2].set_value(2)   # items per version
    at.text_input(key=option_key("hive_distinction", "panels")).input("3")
    at.text_input(key=option_key("hive_distinction", "pick")).input("correct")
    at.button(key="FormSubmitter:study_form-Build study").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    import yaml
    spec = yaml.safe_load((home / "specs" / "hive-3.yaml").read_text())
    assert spec["kind"] == "hive_distinction" and spec["panels"] == 3 and spec["pick"] == "correct"
    study = json.loads((home / "studies" / "hive-3" / "study.json").read_text())
    assert [o["value"] for o in study["options"]] == ["A", "B", "C"]

    # a refused value of a kind's own field is one error naming the field; nothing is written
    at.text_input[0].input("hive-9")
    at.text_input(key=option_key("hive_distinction", "panels")).input("99")
    at.button(key="FormSubmitter:study_form-Build study").click().run()
    assert "panels" in at.error[0].value
    assert not (home / "specs" / "hive-9.yaml").exists() and not (home / "studies" / "hive-9").exists()
