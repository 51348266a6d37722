"""Spec and atlas validation: one error naming the file and the field."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from study.atlas_reader import read_atlas
from study.build import build_study
from study.errors import StudyError
from study.spec import load_spec
from study_helpers import make_atlas, make_consistency_setup


def write(tmp_path, data, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {"kind": "saliency", "methods": ["a"]}


@pytest.mark.parametrize("change, field", [
    ({"kind": "ranking"}, "kind"),
    ({"items_per_versoin": 3}, "items_per_versoin"),
    ({"pool_size": 5, "items_per_version": 10}, "items_per_version"),
    ({"versions": 0}, "versions"),
    ({"seed": -1}, "seed"),
    ({"order": "blocked"}, "order"),
    ({"methods": []}, "methods"),
    ({"methods": [{"atlas": "a", "colour": "x"}]}, "methods[0].colour"),
    ({"media": {"layout": "grid"}}, "media.layout"),
    ({"wording": {"scale": {"points": 5, "labels": {"7": "x"}}}}, "wording.scale.labels.7"),
    ({"wording": {"question": ""}}, "wording.question"),
    ({"wording": {"attention_question": "pick one"}}, "wording.attention_question"),
    ({"attention": {"count": "two"}}, "attention.count"),
    ({"codes": {"completion": "bad code!"}}, "codes.completion"),
    ({"codes": {"completion": "SAME1", "screen_out": "SAME1"}}, "codes.screen_out"),
    ({"codes": {"screen_out": "SAME2", "no_consent": "SAME2"}}, "codes.no_consent"),
    ({"id": "has space"}, "id"),
])
def test_spec_errors_name_file_and_field(tmp_path, change, field):
    path = write(tmp_path, {**BASE, **change})
    with pytest.raises(StudyError) as err:
        load_spec(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: field '{field}'") and "\n" not in msg


def test_spec_defaults_and_overrides(tmp_path):
    spec = load_spec(write(tmp_path, {**BASE, "wording": {"scale": {"points": 7, "labels": {1: "low", 7: "high"}}}}))
    assert (spec.pool_size, spec.items_per_version, spec.order, spec.seed) == (30, 10, "random", 0)
    assert spec.choice_values == [str(i) for i in range(1, 8)]
    assert "salient" in spec.wording["question"] and spec.wording["scale"]["labels"]["7"] == "high"
    assert spec.methods[0].atlas == (tmp_path / "a").resolve()
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    with pytest.raises(StudyError, match=r"bad.yaml: not valid YAML at line"):
        load_spec(bad)


def test_wording_that_names_a_method_is_refused(tmp_path):
    spec = make_consistency_setup(tmp_path, wording={"instructions": "Compare ShareSecret prototypes."})
    with pytest.raises(StudyError, match=r"field 'wording.instructions': mentions 'ShareSecret'"):
        build_study(spec, tmp_path / "out")
    spec = make_consistency_setup(tmp_path, id="atlas-share-study")
    with pytest.raises(StudyError, match=r"field 'id': mentions 'atlas-share'"):
        build_study(spec, tmp_path / "out")


def test_atlas_errors(tmp_path):
    root = make_atlas(tmp_path / "at", "at", "M", n_images=6, n_prototypes=5, n_pairs=2)
    assert read_atlas(root).dataset == "birds"
    data = json.loads((root / "atlas.json").read_text())
    for mutate, field in [
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d["heatmaps"][1].pop("overlay"), "heatmaps[1].overlay"),
        (lambda d: d["prototypes"][0]["nearest"][0].update(box=[5, 5, 1, 1]), "prototypes[0].nearest[0].box"),
        (lambda d: d["pairs"]["euclidean"].append({"a": 0, "b": 99, "score": 1}), "pairs.euclidean[2].b"),
    ]:
        broken = json.loads(json.dumps(data))
        mutate(broken)
        (root / "atlas.json").write_text(json.dumps(broken))
        with pytest.raises(StudyError, match=rf"atlas.json: field '{re.escape(field)}'"):
            read_atlas(root)
    (root / "atlas.json").write_text(json.dumps(data))
    atlas = read_atlas(root)
    with pytest.raises(StudyError, match="leaves the atlas folder"):
        atlas.file("../x.png", "heatmaps[0].image")
    with pytest.raises(StudyError, match="does not exist"):
        atlas.file("images/nope.png", "heatmaps[0].image")


@pytest.mark.parametrize("name", ["saliency.yaml", "consistency.yaml"])
def test_example_specs_are_valid(name):
    spec = load_spec(Path(__file__).resolve().parent.parent / "study" / "examples" / name)
    assert spec.kind in name and spec.methods


def test_fixture_atlases_pass_the_core_validator(tmp_path):
    """Our torch-free test atlases follow FORMATS §4 as core's writer reads it (no drift)."""
    from core.atlas.format import read_atlas as core_read_atlas
    root = make_atlas(tmp_path / "at", "at", "M", n_images=8, n_prototypes=6, n_pairs=3)
    theirs = core_read_atlas(root)
    mine = read_atlas(root)
    assert len(theirs.heatmaps) == len(mine.heatmaps) == 8
    assert theirs.pairs["euclidean"] == mine.pairs["euclidean"]
