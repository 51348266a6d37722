"""Participants get the study's blinded PNG bytes, not a JPEG re-encoding (AppTest: the
media URL Streamlit serves is the content hash of exactly those bytes as image/png)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import _calculate_file_id
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


def _image_urls(at: AppTest) -> list[str]:
    urls = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None and proto.__class__.__name__ == "ImageList":
            urls.extend(i.url for i in proto.imgs)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return urls


def test_question_images_are_the_exact_png_bytes(home):
    study = next(p for p in (home / "studies").iterdir() if (p / "study.json").exists())
    items = json.loads((study / "items.json").read_text())
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = study.name
    at.run()
    at.button(key="consent").click().run()
    at.button(key="instructions").click().run()
    assert not at.exception, [e.value for e in at.exception]
    item_id = next(b.key.split("-")[1] for b in at.button if b.key and b.key.startswith("answer-"))
    media = items[item_id]["media"]
    expected = [f"/mock/media/{_calculate_file_id((study / m).read_bytes(), 'image/png')}.png" for m in media]
    assert _image_urls(at) == expected


def _show(path):
    import streamlit as st

    from app.participant import show_png

    show_png(st, path, "a caption")


@pytest.mark.parametrize("width", [600, 2000])
def test_wide_pngs_are_served_as_they_are(tmp_path, width):
    """Wider than Streamlit's content width (1460 px) a PNG gets its own pixel width, so
    Streamlit neither rescales nor re-encodes it."""
    rng = np.random.default_rng(width)
    path = tmp_path / "wide.png"
    Image.fromarray(rng.integers(0, 256, (20, width, 3), dtype=np.uint8)).save(path, format="PNG")
    at = AppTest.from_function(_show, args=(str(path),), default_timeout=30)
    at.run()
    assert not at.exception
    assert _image_urls(at) == [f"/mock/media/{_calculate_file_id(path.read_bytes(), 'image/png')}.png"]


def test_media_check_page_needs_the_study_key_and_shows_every_picture(home):
    """The page `python -m study check` opens: every picture of the study, each the exact
    PNG bytes under its file name; a wrong token shows nothing but the invalid-link line."""
    from study.media_probe import media_check_token

    study = next(p for p in (home / "studies").iterdir() if (p / "study.json").exists())
    names = sorted({m for item in json.loads((study / "items.json").read_text()).values() for m in item["media"]})
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = study.name
    at.query_params["media_check"] = "0" * 32
    at.run()
    assert [e.value for e in at.error] == ["This study link is not valid."] and _image_urls(at) == []
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.query_params["study"] = study.name
    at.query_params["media_check"] = media_check_token(study / "private" / "key.json", study.name)
    at.run()
    assert not at.exception and not at.error
    assert _image_urls(at) == [f"/mock/media/{_calculate_file_id((study / m).read_bytes(), 'image/png')}.png"
                               for m in names]
