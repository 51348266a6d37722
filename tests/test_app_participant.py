"""The participant flow in Streamlit's AppTest: consent, questions, resume, completion,
Prolific, blinding, and the wall between participant links and researcher pages."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import app_helpers

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


@pytest.fixture()
def home(tmp_path, monkeypatch):
    ws = app_helpers.workspace(tmp_path / "ws")
    monkeypatch.setenv("PROTOPROTO_HOME", str(ws))
    monkeypatch.setenv("PROTOPROTO_PASSWORD", app_helpers.PASSWORD)
    monkeypatch.delenv("PROTOPROTO_DB", raising=False)
    return ws


def visit(**params) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown_text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "title", "header", "subheader", "code", "error",
                                  "info", "success", "warning")
             for e in getattr(at, kind)]
    parts += [b.label for b in at.button] + [i.caption or "" for i in at.get("image") if hasattr(i, "caption")]
    return "\n".join(str(p) for p in parts)


def key_of(home: Path, study: str) -> dict:
    return json.loads((home / "studies" / study / "private" / "key.json").read_text())


def has_button(at: AppTest, key: str) -> bool:
    return any(b.key == key for b in at.button)


def answer_buttons(at: AppTest) -> list:
    return [b for b in at.button if b.key and b.key.startswith("answer-")]


def current_item(at: AppTest) -> str:
    keys = {b.key.split("-")[1] for b in answer_buttons(at)}
    assert len(keys) == 1
    return keys.pop()


def through_consent(at: AppTest) -> None:
    at.button(key="consent").click().run()
    at.button(key="instructions").click().run()


def answer(at: AppTest, home: Path, study: str, choose) -> tuple[str, str]:
    item = current_item(at)
    info = key_of(home, study)["items"][item]
    value = info["expected"] if info["kind"] == "attention" else choose(item)
    at.button(key=f"answer-{item}-{value}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return item, value


def stored(home: Path, study: str) -> list[dict]:
    from study.folder import open_study
    from study.store import open_store

    folder = open_study(home / "studies" / study)
    store = open_store(None, folder.root)
    try:
        return store.export_rows(study)
    finally:
        store.close()


def stored_people(home: Path, study: str) -> list[dict]:
    from study.folder import open_study
    from study.store import open_store

    store = open_store(None, open_study(home / "studies" / study).root)
    try:
        return store.participants_of(study)
    finally:
        store.close()


def refusals(home: Path, study: str) -> dict:
    from study.folder import open_study
    from study.store import open_store

    store = open_store(None, open_study(home / "studies" / study).root)
    try:
        return store.refusal_counts(study)
    finally:
        store.close()


def test_full_session_stores_every_answer(home):
    study = "demo-saliency"
    at = visit(study=study)
    assert has_button(at, "consent") and has_button(at, "decline") and not answer_buttons(at)
    assert "token" not in at.query_params and stored_people(home, study) == []   # nothing before consent
    through_consent(at)
    token = at.query_params["token"]
    assert token and [p["token"] for p in stored_people(home, study)] == [token]
    given = {}
    terms = key_of(home, study)["private_terms"]
    versions = json.loads((home / "studies" / study / "versions.json").read_text())["versions"]
    while answer_buttons(at):
        progress = at.get("progress")[0]
        assert progress.text == f"Question {len(given) + 1} of {len(versions[0])}"
        body = shown_text(at)
        for term in terms:
            assert term.lower() not in body.lower(), term
        item, value = answer(at, home, study, lambda i: str(1 + len(given) % 5))
        given[item] = value
        # the answer is in the store before the next question is on screen
        assert {r["item_id"]: r["answer"] for r in stored(home, study)} == given
    assert list(given) == versions[0]
    rows = stored(home, study)
    assert {r["status"] for r in rows} == {"finished"}
    assert all(r["response_ms"] is not None and r["response_ms"] >= 0 for r in rows)
    manifest = json.loads((home / "studies" / study / "study.json").read_text())
    assert f"**{manifest['codes']['completion']}**" in shown_text(at)


def test_reload_resumes_at_next_unanswered(home):
    study = "demo-consistency"
    at = visit(study=study)
    through_consent(at)
    token = at.query_params["token"]
    first, _ = answer(at, home, study, lambda i: "A")
    second, _ = answer(at, home, study, lambda i: "undecided")
    again = visit(study=study, token=token)      # a new browser session with the same link
    assert not has_button(again, "consent")       # no consent again once answers exist
    assert again.get("progress")[0].text.startswith("Question 3 of ")
    assert current_item(again) not in (first, second)
    assert len(stored(home, study)) == 2


def test_prolific_link_finishes_with_redirect(home):
    study = "demo-consistency"
    at = visit(study=study, PROLIFIC_PID="5f0c0ffee0123456789abcde", STUDY_ID="st1", SESSION_ID="se1")
    through_consent(at)
    while answer_buttons(at):
        answer(at, home, study, lambda i: "B")
    manifest = json.loads((home / "studies" / study / "study.json").read_text())
    links = at.get("link_button")
    assert len(links) == 1
    assert links[0].proto.url == "https://app.prolific.com/submissions/complete?cc=" + manifest["codes"]["completion"]
    rows = stored(home, study)
    assert {r["worker_id"] for r in rows} == {"5f0c0ffee0123456789abcde"} and {r["platform"] for r in rows} == {"prolific"}


def test_failed_attention_check_screens_out(home):
    study = "demo-saliency"
    at = visit(study=study)
    through_consent(at)
    key = key_of(home, study)["items"]
    while answer_buttons(at):
        item = current_item(at)
        if key[item]["kind"] == "attention":
            wrong = next(v for v in ("1", "2") if v != key[item]["expected"])
            at.button(key=f"answer-{item}-{wrong}").click().run()
            break
        answer(at, home, study, lambda i: "3")
    manifest = json.loads((home / "studies" / study / "study.json").read_text())
    assert not answer_buttons(at)
    assert f"**{manifest['codes']['screen_out']}**" in shown_text(at)
    assert {r["status"] for r in stored(home, study)} == {"screened_out"}


def test_participant_link_cannot_reach_researcher_pages(home):
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = "demo-saliency"
    at.session_state["researcher"] = True         # even a signed-in researcher's session
    at.run()
    assert not at.sidebar.radio and not at.header and not at.text_input
    assert "Researcher" not in shown_text(at)
    for bad in ("nope", "../studies", "demo-saliency/../../x"):
        at = visit(study=bad)
        assert [e.value for e in at.error] == ["This study link is not valid."]
        assert not at.sidebar.radio and not at.header
    # Streamlit would serve any app/pages/*.py as its own URL, bypassing both doors
    assert not (Path(MAIN).parent / "pages").exists()


def test_bad_token_is_refused(home):
    at = visit(study="demo-saliency", token="unknown-token-123")
    assert "unknown link token" in at.error[0].value
    assert not answer_buttons(at) and not has_button(at, "consent")


def test_no_consent_stores_only_the_refusal(home):
    study = "demo-saliency"
    at = visit(study=study)
    at.button(key="decline").click().run()
    assert not at.exception
    assert "You did not agree to take part" in shown_text(at)
    assert not answer_buttons(at) and not has_button(at, "consent") and not at.get("link_button")
    assert "token" not in at.query_params
    assert stored_people(home, study) == [] and stored(home, study) == []
    assert refusals(home, study) == {"local": 1}
    at.run()                                        # a rerun of the same session keeps the message
    assert "You did not agree to take part" in shown_text(at) and refusals(home, study) == {"local": 1}


def test_prolific_no_consent_gets_its_code_and_the_return_request(home):
    study = "demo-consistency"
    manifest = json.loads((home / "studies" / study / "study.json").read_text())
    code = manifest["codes"]["no_consent"]
    assert code not in (manifest["codes"]["completion"], manifest["codes"]["screen_out"])
    at = visit(study=study, PROLIFIC_PID="5f0c0ffee0123456789abcde", STUDY_ID="st1", SESSION_ID="se1")
    at.button(key="decline").click().run()
    text = shown_text(at)
    assert "return your submission on Prolific" in text and f"**{code}**" in text
    links = at.get("link_button")
    assert [b.proto.url for b in links] == ["https://app.prolific.com/submissions/complete?cc=" + code]
    assert stored_people(home, study) == [] and refusals(home, study) == {"prolific": 1}


def test_withdrawing_consent_before_the_first_answer_removes_the_participant(home):
    study = "demo-saliency"
    at = visit(study=study)
    through_consent(at)
    token = at.query_params["token"]
    assert len(stored_people(home, study)) == 1
    again = visit(study=study, token=token)          # a new session, still no answer: consent again
    assert has_button(again, "consent")
    again.button(key="decline").click().run()
    assert stored_people(home, study) == [] and refusals(home, study) == {"local": 1}
    assert "token" not in again.query_params
