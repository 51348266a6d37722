"""The torch-free foundation package `common/`: one error root, atomic single-file
writes, names spelled once."""
from __future__ import annotations

import pytest

from common.atomic import write_atomic
from common.errors import ToolkitError
from common.names import PAIR_SOURCES, STUDY_ID_RE, is_study_id


def test_every_one_line_error_derives_from_the_one_root():
    from app.upload import UploadError
    from common.images import ImageLimitError
    from core.errors import CheckpointError, DataError, FormatError, UserFacingError
    from study.errors import StudyError

    for cls in (UserFacingError, DataError, CheckpointError, FormatError, StudyError, UploadError, ImageLimitError):
        assert issubclass(cls, ToolkitError), cls
    # the old bases stay: code catching ValueError around uploads and images keeps working
    assert issubclass(UploadError, ValueError) and issubclass(ImageLimitError, ValueError)
    with pytest.raises(ToolkitError, match="atlas.json"):
        from core.atlas.format import read_atlas
        read_atlas("/nonexistent-folder-for-this-test")


def test_write_atomic_text_bytes_and_failure(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    write_atomic(path, "één\n")
    assert path.read_text(encoding="utf-8") == "één\n"
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "ü", encoding="ascii")     # fails half-way: the old file stays
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]   # no temporary file left
    write_atomic(tmp_path / "c.csv", "a,b\r\n", newline="")
    assert (tmp_path / "c.csv").read_bytes() == b"a,b\r\n"


@pytest.mark.parametrize("value, ok", [("demo-saliency", True), ("a", True), ("A_1-b", True), ("-x", False),
                                       ("", False), ("a/b", False), ("a" * 64, True), ("a" * 65, False),
                                       (None, False), (3, False)])
def test_one_study_id_rule(value, ok):
    from study.platforms.local import parse_link
    from study.errors import StudyError
    from study.spec import ID_RE

    assert is_study_id(value) is ok
    assert ID_RE is STUDY_ID_RE
    if isinstance(value, str) and value:
        if ok:
            assert parse_link({"study": value}).study_id == value
        else:
            with pytest.raises(StudyError):
                parse_link({"study": value})


def test_pair_sources_spelled_once():
    from core.atlas.format import empty_manifest
    from core.protopshare.pairs import SOURCES
    from core.protopshare.similarity import SIMILARITIES

    assert SOURCES is SIMILARITIES is PAIR_SOURCES
    assert tuple(empty_manifest("n", "m", "d", ["A"])["pairs"]) == PAIR_SOURCES


def test_one_atlas_reader_for_core_and_study(tmp_path, monkeypatch):
    """core, study (and the app, through core) get the same typed Atlas from the same
    reader; each caller gets its own error class, all ToolkitErrors; a relative path is
    made absolute once."""
    import json

    from common.atlas import Atlas, AtlasError, read_atlas
    from core.atlas.format import read_atlas as core_read
    from core.errors import FormatError
    from study.atlas_reader import read_atlas as study_read
    from study.errors import StudyError
    from study_helpers import make_atlas

    root = make_atlas(tmp_path / "at", "at", "M", n_images=6, n_prototypes=5, n_pairs=2)
    monkeypatch.chdir(tmp_path)
    atlas = read_atlas("at")
    assert isinstance(atlas, Atlas) and atlas.root == root and atlas.root.is_absolute()
    assert (atlas.name, atlas.method, atlas.dataset) == ("at", "M", "birds")
    assert set(atlas.pairs) == set(PAIR_SOURCES) and len(atlas.pairs["euclidean"]) == 2
    theirs, mine = core_read("at/atlas.json"), study_read("at")
    assert isinstance(theirs, Atlas) and theirs == atlas and theirs.root == root
    assert mine == atlas and mine.prototypes == atlas.prototypes
    assert sorted(mine.prototypes) == [p["id"] for p in atlas.doc["prototypes"]]

    broken = json.loads((root / "atlas.json").read_text())
    broken["prototypes"][0]["classes"] = [99]
    (root / "atlas.json").write_text(json.dumps(broken))
    for reader, cls in ((read_atlas, AtlasError), (core_read, FormatError), (study_read, StudyError)):
        with pytest.raises(cls, match=r"atlas.json: field 'prototypes\[0\].classes'") as info:
            reader(root)
        assert isinstance(info.value, ToolkitError) and "\n" not in str(info.value)
    (root / "atlas.json").write_text(json.dumps(atlas.doc))
    with pytest.raises(StudyError, match="leaves the atlas folder"):
        study_read(root).file("../x.png", "heatmaps[0].image")
