"""The prediction-based question kinds refuse atlases without predictions in one clear line
(imported heatmap atlases, atlases built before the section), and the wording constants
name no method and no class."""
from __future__ import annotations

import json

import pytest

from study.atlas_reader import read_atlas
from study.errors import StudyError
from study.stimuli import wording_new_kinds as wording
from study.stimuli.candidates import agreement_candidates, distinction_candidates, similarity_candidates
from study.stimuli.predictions import has_predictions, require_predictions, shown_class_name
from study_helpers import make_atlas


def test_imported_atlas_is_refused(tmp_path):
    atlas = read_atlas(make_atlas(tmp_path / "imported", "imported", "SecretMethod"))   # model null: an import
    assert not has_predictions(atlas)
    for select in (distinction_candidates, agreement_candidates, similarity_candidates):
        with pytest.raises(StudyError, match="imported heatmap atlas") as err:
            select(atlas)
        assert "\n" not in str(err.value) and "atlas.json" in str(err.value)


def test_old_model_atlas_is_refused_with_the_fix(tmp_path):
    root = make_atlas(tmp_path / "old", "old", "SecretMethod")
    doc = json.loads((root / "atlas.json").read_text())
    doc["model"] = {"model": {"architecture": "protopool"}}
    doc["created_from"]["checkpoint"] = "../model.pt"
    (root / "atlas.json").write_text(json.dumps(doc))
    atlas = read_atlas(root)                                     # an atlas without the section still loads
    with pytest.raises(StudyError, match=r"'predictions' section.*--predictions 40"):
        require_predictions(atlas, "agreement")


def test_wrong_target_and_k(tmp_path):
    atlas = read_atlas(make_atlas(tmp_path / "a", "a", "SecretMethod"))
    with pytest.raises(StudyError, match="target must be one of predicted, correct"):
        distinction_candidates(atlas, target="best")
    with pytest.raises(StudyError, match="at least 2 classes"):
        distinction_candidates(atlas, k=1)


def test_wording_is_neutral():
    texts = [v for k, v in vars(wording).items() if k.isupper() and isinstance(v, str)]
    texts += [s for k, v in vars(wording).items() if k.isupper() and isinstance(v, tuple) for s in v]
    for text in texts:
        for word in ("ProtoPool", "ProtoPNet", "ProtoTree", "focal", "HIVE", "species"):
            assert word.lower() not in text.lower()
    assert len(wording.AGREEMENT_SCALE) == 4 and len(wording.SIMILARITY_SCALE) == 5
    assert wording.DISTINCTION_K == 4
    assert "{class_name}" in wording.AGREEMENT_INSTRUCTION
    assert wording.DISTINCTION_CHANCE_NOTE.format(k=4).endswith("4.")


def test_shown_class_name(tmp_path):
    root = make_atlas(tmp_path / "a", "a", "SecretMethod")
    doc = json.loads((root / "atlas.json").read_text())
    doc["dataset"]["class_names"] = ["001.Black_footed_Albatross", "Cardinal", "3.5_mm"]
    (root / "atlas.json").write_text(json.dumps(doc))
    atlas = read_atlas(root)
    assert [shown_class_name(atlas, c) for c in range(3)] == ["Black footed Albatross", "Cardinal", "5 mm"]
