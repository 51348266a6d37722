"""What a session shows: no picture twice, attention checks with pictures of their own."""
from __future__ import annotations

import json
from collections import Counter

from PIL import Image

from study.build import build_study
from study.folder import open_study
from study_helpers import make_consistency_setup, make_saliency_setup


def _session_media(study, seq):
    return [m for item in seq for m in study.items[item]["media"]]


def _assert_checks_have_own_pictures(study):
    key = study.key
    checks = [i for i, k in key.items() if k["kind"] == "attention"]
    real = {m for i, k in key.items() if k["kind"] != "attention" for m in study.items[i]["media"]}
    check_media = [m for i in checks for m in study.items[i]["media"]]
    assert checks and not set(check_media) & real               # never a copy of a real question
    assert len(check_media) == len(set(check_media))            # nor of another check
    for seq in study.versions:
        media = _session_media(study, seq)
        assert len(media) == len(set(media)), Counter(media).most_common(2)   # nothing twice in a session
        assert key[seq[0]]["kind"] != "attention"
    return checks


def test_saliency_session_shows_every_picture_once(tmp_path):
    spec = make_saliency_setup(tmp_path, datasets=("birds",), versions=3)
    study = open_study(build_study(spec, tmp_path / "studies" / "sal"))
    checks = _assert_checks_have_own_pictures(study)
    assert len(checks) == 2
    picture = study.items[checks[0]]["media"][0]
    with Image.open(study.root / picture) as im:      # shaped like the real questions, but no photograph
        assert im.size == (448 * 2 + 8, 336) and len(im.getcolors(1 << 16)) < 400


def test_consistency_lookalike_sets_are_shown_once(tmp_path):
    """Two prototypes projected onto the same patches make two pairs look identical: the
    pool keeps one, and no session shows a set twice (the check included)."""
    spec = make_consistency_setup(tmp_path, pool_size=8, items_per_version=4, versions=4,
                                  attention={"count": 2})
    manifest = tmp_path / "atlases" / "atlas-share" / "atlas.json"
    atlas = json.loads(manifest.read_text())
    protos = {p["id"]: p for p in atlas["prototypes"]}
    dd, eu = atlas["pairs"]["data_dependent"], atlas["pairs"]["euclidean"]
    a, b = dd[1]["a"], dd[1]["b"]
    twin = next(p for p in protos if p not in (a, b) and (min(p, b), max(p, b)) not in
                {(q["a"], q["b"]) for q in dd + eu})
    protos[twin]["nearest"] = [dict(n) for n in protos[a]["nearest"]]    # twin looks exactly like a
    eu.insert(1, {"a": min(twin, b), "b": max(twin, b), "score": eu[1]["score"]})
    manifest.write_text(json.dumps(atlas))

    study = open_study(build_study(spec, tmp_path / "studies" / "cons"))
    _assert_checks_have_own_pictures(study)
    pairs = {tuple(k[f"{side}_pair"]) for k in study.key.values() if k["kind"] == "consistency"
             for side in ("left", "right")}
    assert (a, b) in pairs and (min(twin, b), max(twin, b)) not in pairs
