"""Blinding: nothing a participant can receive names a method, an atlas or the key.

Scanned: every served file of the study folder (names and bytes, PNG chunks), every
question the session hands to the app (text, captions, media names), participant links,
the whole Mechanical Turk export (HTML, CSV, XML, media) and the blinded answers CSV.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import yaml

from study.build import build_study
from study.export import answer_rows, to_csv
from study.folder import open_study
from study.platforms.local import open_link, parse_link, personal_link
from study.platforms.mturk_export import export_mturk
from study.platforms.prolific import study_url
from study.session import StudyRunner
from study_helpers import SALIENCY_METHODS, make_consistency_setup, make_saliency_setup

ALLOWED_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        kinds.append(kind)
        pos += 12 + length
    return kinds


def secrets_of(study_dir: Path) -> list[str]:
    """Method labels, atlas names, and every string value of the private key."""
    key = json.loads((study_dir / "private" / "key.json").read_text())
    terms = set(key["private_terms"])
    for info in key["items"].values():
        for field in ("method", "atlas", "heatmap", "left_source", "right_source", "left_heatmap", "right_heatmap"):
            if isinstance(info.get(field), str) and len(info[field]) >= 4:
                terms.add(info[field])
    for m in key["methods"]:
        terms.update({m["label"], m["atlas"]})
    terms.update(label for _, label in SALIENCY_METHODS)
    terms.update({"ShareSecret", "data_dependent", "euclidean", "atlas-zeta", "atlas-share", "key.json"})
    return sorted(terms)


def assert_clean(what: str, blob: bytes | str, terms: list[str]) -> None:
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
    low = text.lower()
    for term in terms:
        assert term.lower() not in low, f"{what} reveals {term!r}"


def pairwise_spec(tmp: Path) -> Path:
    make_saliency_setup(tmp, n_images=12, datasets=("birds",))
    spec = {"kind": "pairwise", "seed": 5, "pool_size": 8, "items_per_version": 4, "versions": 3,
            "methods": [f"atlases/{name}-birds" for name, _ in SALIENCY_METHODS], "attention": {"count": 1}}
    path = tmp / "pairwise.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


SETUPS = {
    "saliency-pair-layout": lambda tmp: make_saliency_setup(tmp, n_images=12, datasets=("birds", "cars"),
                                                            pool_size=10, items_per_version=3,
                                                            media={"layout": "pair"}),
    "consistency": lambda tmp: make_consistency_setup(tmp),
    "pairwise": pairwise_spec,
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_nothing_served_reveals_methods_or_key(tmp_path, setup):
    spec = SETUPS[setup](tmp_path)
    study_dir = build_study(spec, tmp_path / "studies" / "s1")
    terms = secrets_of(study_dir)
    assert "ProtoPoolSecret" in terms or "ShareSecret" in terms

    # 1. the served part of the study folder: file names, bytes, PNG chunks
    served = [p for p in study_dir.rglob("*") if p.is_file() and "private" not in p.relative_to(study_dir).parts]
    assert served and all(p.parent.name in ("media", study_dir.name) for p in served)
    for path in served:
        assert_clean(f"file name {path.name}", path.name, terms)
        data = path.read_bytes()
        assert_clean(str(path), data, terms)
        if path.suffix == ".png":
            assert set(png_chunks(data)) <= ALLOWED_CHUNKS, f"{path} keeps metadata chunks"

    # 2. everything the session gives the app for a full run, plus links
    runner = StudyRunner.open(study_dir, f"sqlite:///{tmp_path / 'a.sqlite'}")
    p = runner.start()
    assert_clean("wording", json.dumps(runner.wording), terms)
    assert_clean("options", json.dumps(runner.options), terms)
    while (item := runner.next_item(p.participant_id)) is not None:
        assert_clean("question", item.question + " ".join(item.captions), terms)
        for media in item.media:
            assert_clean("media name", media.name, terms)
        runner.record_answer(p.participant_id, item.item_id, runner.key[item.item_id].get("expected", "A")
                             if runner.study.kind != "saliency" else runner.key[item.item_id].get("expected", "3"), 900)
    done = runner.finish(p.participant_id)
    assert_clean("completion", done.code + done.message, terms)
    for link in (personal_link("https://s.example/app", "s1", p.token), open_link("https://s.example/app", "s1"),
                 study_url("https://s.example/app", "s1")):
        assert_clean("link", link, terms)
        assert parse_link({"study": "s1"}).study_id == "s1"

    # 3. the Mechanical Turk batch, every file
    batch = export_mturk(open_study(study_dir), "https://cdn.example.org/x/", tmp_path / "batch")
    for path in batch.rglob("*"):
        if path.is_file():
            assert_clean(f"mturk file name {path.name}", path.name, terms)
            assert_clean(str(path), path.read_bytes(), terms)

    # 4. the blinded answers CSV (the unblinded one does name methods / sources)
    study = open_study(study_dir)
    blinded = to_csv(answer_rows(study, runner.store, blinded=True), blinded=True)
    assert_clean("blinded CSV", blinded, terms)
    unblinded = to_csv(answer_rows(study, runner.store), blinded=False)
    if study.kind == "saliency":
        assert any(label in unblinded for _, label in SALIENCY_METHODS)
    else:
        assert "data_dependent" in unblinded or "Secret" in unblinded


def test_source_metadata_really_was_there(tmp_path):
    """Guard against a vacuous scan: the atlas files do carry the secrets in PNG text chunks."""
    spec = make_consistency_setup(tmp_path)
    atlas_png = next((tmp_path / "atlases" / "atlas-share" / "images").iterdir()).read_bytes()
    assert b"tEXt" in set(png_chunks(atlas_png)) and b"ShareSecret" in atlas_png
    assert spec.exists()
