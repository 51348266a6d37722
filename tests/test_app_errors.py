"""No page shows a traceback (issue 11): broken artifacts injected into a workspace copied
to one folder, the app run from another; each page shows one error line naming the file,
field or value, and AppTest records no exception."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import app_helpers
from test_app_pages import MAIN, signed_in, texts

ATLAS = "protopool-birds"
STUDY = "demo-saliency"


@pytest.fixture()
def home(tmp_path, monkeypatch):
    ws = app_helpers.workspace(tmp_path / "elsewhere" / "ws")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("PROTOPROTO_HOME", str(ws))
    monkeypatch.setenv("PROTOPROTO_PASSWORD", app_helpers.PASSWORD)
    monkeypatch.delenv("PROTOPROTO_DB", raising=False)
    return ws


def one_error(at: AppTest, *needles: str) -> str:
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    line = errors[0]
    # short, paths aside (a test's temporary folder is longer under pytest-xdist)
    assert "\n" not in line and "Traceback" not in line and len(re.sub(r"/\S+", "/…", line)) <= 400
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def no_error(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def edit_atlas(home: Path, change, name: str = ATLAS) -> None:
    path = home / "atlases" / name / "atlas.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_explain_finds_the_checkpoints_relative_data_root_from_another_folder(home):
    """The reported bug: with the atlas's own data_root gone from the record, the page reads
    the checkpoint's `data.root: data/synthetic-birds` from the checkpoint's folder upwards."""
    edit_atlas(home, lambda d: d["created_from"].update(data_root=None))
    at = signed_in("Explain an image")
    no_error(at)
    assert at.metric[0].label == "Prediction"
    assert not Path("data").exists()   # nothing was looked up in (or written to) the current folder


@pytest.mark.parametrize("page", ["Models", "Explain an image", "Sharing"])
def test_malformed_atlas_json(home, page):
    (home / "atlases" / ATLAS / "atlas.json").write_text('{"format": "protoproto-atlas", ')
    at = signed_in()
    at.sidebar.radio(key="page").set_value(page).run()
    one_error(at, str(home / "atlases" / ATLAS / "atlas.json"), "not readable JSON")
    key = {"Models": "atlas", "Explain an image": "explain_atlas", "Sharing": "sharing_atlas"}[page]
    at.selectbox(key=key).set_value("protopool-nofocal-birds").run()   # the other atlas still opens
    no_error(at)


def test_atlas_field_error_names_the_field(home):
    edit_atlas(home, lambda d: d["prototypes"][0].update(classes=[99]))
    at = signed_in("Models")
    one_error(at, "atlas.json", "field 'prototypes[0].classes'", "99")


def test_missing_data_root_says_so_and_takes_the_folder(home, tmp_path):
    moved = tmp_path / "moved-birds"
    shutil.move(home / "data" / "synthetic-birds", moved)
    at = signed_in("Explain an image")
    one_error(at, "data/synthetic-birds not found", "config data.root", "Data set folder")
    box = next(t for t in at.text_input if t.key.startswith("explain_data_root::"))
    box.input(str(moved)).run()
    no_error(at)
    assert at.metric[0].label == "Prediction"
    at.selectbox(key="explain_true_class").set_value(1).run()   # the typed folder is kept across reruns
    no_error(at)


def test_checkpoint_recorded_but_not_here(home):
    edit_atlas(home, lambda d: d["created_from"].update(checkpoint="/nonexistent/elsewhere/model.pt"))
    at = signed_in("Explain an image")
    one_error(at, "field 'created_from.checkpoint'", "/nonexistent/elsewhere/model.pt not found", "rebuild")
    at.sidebar.radio(key="page").set_value("Sharing").run()
    no_error(at)   # the atlas's figures still show; only the assignment matrices need the model
    assert any("created_from.checkpoint" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 3


def test_checkpoint_of_another_data_set(home):
    from core.training.checkpoint import read_checkpoint, save_checkpoint

    path = home / "checkpoints" / "protopool" / "model.pt"
    config = read_checkpoint(path)["config"]
    cfg, model = app_helpers._tiny_model("focal", num_classes=5, seed=3)
    save_checkpoint(path, model, config={"model": cfg.to_dict(), "data": config["data"]},
                    class_names=[f"c{i}" for i in range(5)], history=[], projection=None)
    at = signed_in("Explain an image")
    one_error(at, "has 3 classes", "trained on 5", "Data set folder")


def test_corrupt_checkpoint(home):
    path = home / "checkpoints" / "protopool" / "model.pt"
    path.write_bytes(b"not a checkpoint at all")
    at = signed_in("Explain an image")
    one_error(at, str(path), "not a loadable checkpoint")


@pytest.mark.parametrize("page,key", [("Run and monitor", "monitor_study"), ("Export", "export_study"),
                                      ("Analysis", "analysis_study")])
def test_broken_study_json(home, page, key):
    (home / "studies" / STUDY / "study.json").write_text("{ broken")
    at = signed_in(page)
    at.selectbox(key=key).set_value(STUDY).run()
    one_error(at, str(home / "studies" / STUDY / "study.json"), "not readable JSON")
    at.selectbox(key=key).set_value("demo-consistency").run()
    no_error(at)


def test_broken_study_in_the_builder_preview(home):
    (home / "studies" / STUDY / "versions.json").write_text("[]")
    at = signed_in("Study builder")
    at.radio(key="builder_view").set_value("Preview").run()
    at.selectbox(key="preview_study").set_value(STUDY).run()
    one_error(at, str(home / "studies" / STUDY), "versions.json")


def test_builder_with_a_broken_atlas(home):
    edit_atlas(home, lambda d: d.pop("heatmaps"))
    at = signed_in("Study builder")
    at.text_input[0].input("pilot-x")
    at.multiselect[0].set_value([ATLAS])
    at.button(key="FormSubmitter:study_form-Build study").click().run()
    one_error(at, str(home / "atlases" / ATLAS / "atlas.json"), "field 'heatmaps'")
    assert not (home / "studies" / "pilot-x").exists() and not (home / "specs" / "pilot-x.yaml").exists()


def test_unreadable_answer_store(home):
    (home / "studies" / STUDY / "answers.sqlite").write_bytes(b"this is not a database" * 100)
    at = signed_in("Run and monitor")
    at.selectbox(key="monitor_study").set_value(STUDY).run()
    one_error(at, "answer store", "answers.sqlite")


def test_a_bug_is_one_line_and_goes_to_the_log(home, monkeypatch, caplog):
    from core.explain import global_views

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(global_views, "shared_prototypes", boom)
    at = signed_in("Sharing")
    one_error(at, "Unexpected error (RuntimeError: boom second line)", "app's log")
    assert any("Traceback" in r.exc_text for r in caplog.records if r.name == "protoproto.app" and r.exc_text)


def test_the_live_counts_fragment_has_its_own_guard(home, monkeypatch):
    from app.views import monitor

    monkeypatch.setattr(monitor, "study_counts", lambda runner: {}["started"])
    at = signed_in("Run and monitor")
    one_error(at, "Unexpected error (KeyError: 'started')")
    assert [c.value for c in at.code][:1] == [f"http://127.0.0.1:8501/?study={at.selectbox(key='monitor_study').value}"]


def test_participant_link_to_a_broken_study(home, caplog):
    """The participant gets a neutral line (no server path); the researcher's log the file."""
    from app.errors import PARTICIPANT_MESSAGE

    (home / "studies" / STUDY / "items.json").write_text("{")
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = STUDY
    at.run()
    assert one_error(at) == PARTICIPANT_MESSAGE and str(home) not in texts(at)
    assert any("items.json: not readable JSON" in (r.exc_text or "") for r in caplog.records)


def test_participant_sees_the_studys_own_messages(home):
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = "no-such-study"
    at.run()
    assert one_error(at) == "This study link is not valid."
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = STUDY
    at.query_params["token"] = "x" * 5
    at.run()
    one_error(at, "link: parameter 'token'")


def test_participant_never_sees_a_bugs_details(home, monkeypatch):
    from app.errors import PARTICIPANT_MESSAGE
    from study.session import StudyRunner

    def boom(cls, *args, **kwargs):
        raise KeyError("ProtoPool secret key")

    monkeypatch.setattr(StudyRunner, "open", classmethod(boom))
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = STUDY
    at.run()
    assert one_error(at) == PARTICIPANT_MESSAGE
    assert "ProtoPool" not in texts(at) and "KeyError" not in texts(at)


def test_message_for_each_kind_of_error(tmp_path):
    import yaml

    from app.errors import message
    from app.upload import UploadError
    from core.errors import CheckpointError, DataError, FormatError, UserFacingError
    from study.errors import StudyError

    for cls in (UserFacingError, DataError, CheckpointError, FormatError, StudyError, UploadError):
        assert message(cls("x.json: field 'a'\n  detail")) == "x.json: field 'a' detail"
    missing = tmp_path / "gone.json"
    with pytest.raises(OSError) as err:
        missing.read_text()
    assert message(err.value) == f"{missing}: file not found (was it moved or deleted? rebuild it or choose another)"
    with pytest.raises(json.JSONDecodeError) as err:
        json.loads('{"a": }')
    assert message(err.value) == "not readable JSON: Expecting value at line 1, column 7"
    bad = tmp_path / "spec.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(yaml.YAMLError) as err, bad.open() as fh:
        yaml.safe_load(fh)
    assert message(err.value).startswith(f"{bad}: not readable YAML: ") and "at line 2" in message(err.value)
    assert len(message(StudyError("y" * 1000))) == 400
    assert message(ValueError("odd")) == ("Unexpected error (ValueError: odd). This is a bug; the details are in "
                                          "the app's log.")
