"""Building studies: selection, balance, order, determinism, atomic writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from study.build import build_study
from study.cli import main as study_main
from study.errors import StudyError
from study.folder import open_study
from study.order import assign_balanced, balanced_latin_square
from study_helpers import make_consistency_setup, make_saliency_setup

ROOT = Path(__file__).resolve().parent.parent


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def saliency(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sal")
    spec = make_saliency_setup(tmp)
    return spec, build_study(spec, tmp / "studies" / "sal")


def test_saliency_versions_follow_spec(saliency):
    _, out = saliency
    study = open_study(out)
    key = study.key
    assert len(study.versions) == 4
    for seq in study.versions:
        assert len(seq) == len(set(seq)) == 2 * 3 * 10 + 2
        per_combo = Counter((key[i]["dataset"], key[i]["method"]) for i in seq if key[i]["kind"] == "saliency")
        assert len(per_combo) == 6 and set(per_combo.values()) == {10}
        assert sum(key[i]["kind"] == "attention" for i in seq) == 2
        assert key[seq[0]]["kind"] != "attention"
    # pool of 30 per combination; 4 versions x 10 = 40 uses -> each item used once or twice
    uses = Counter(i for seq in study.versions for i in seq if key[i]["kind"] == "saliency")
    by_combo: dict = {}
    for item, n in uses.items():
        by_combo.setdefault((key[item]["dataset"], key[item]["method"]), []).append(n)
    for counts in by_combo.values():
        assert len(counts) == 30 and max(counts) - min(counts) <= 1 and sum(counts) == 40
    # distinct images within a combination's pool, heatmaps from the right atlas
    for (ds, method), _ in by_combo.items():
        images = [key[i]["image_id"] for i in uses if key[i]["dataset"] == ds and key[i]["method"] == method]
        assert len(images) == len(set(images)) == 30


def test_media_side_by_side_and_clean(saliency):
    _, out = saliency
    study = open_study(out)
    item = next(v for v in study.items.values() if v["kind"] == "saliency")
    assert len(item["media"]) == 1
    with Image.open(out / item["media"][0]) as im:
        # the atlas's 96-px pictures are shown at the study's 448 px (media.max_side), not at file size
        assert im.size == (448 * 2 + 8, 448) and im.mode == "RGB" and im.info == {}


def test_same_spec_and_seed_give_identical_bytes(tmp_path):
    spec = make_consistency_setup(tmp_path, id="cons-a")
    a = build_study(spec, tmp_path / "one")
    b = build_study(spec, tmp_path / "two")
    assert tree_bytes(a) == tree_bytes(b)
    # another process with another hash seed (set iteration order) gives the same bytes too
    for hash_seed, name in (("1", "p1"),):
        subprocess.run([sys.executable, "-m", "study", "build", str(spec), "--out", str(tmp_path / name)],
                       cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": hash_seed}, check=True, capture_output=True)
        assert tree_bytes(tmp_path / name) == tree_bytes(a)
    data = yaml.safe_load(spec.read_text())
    data["seed"] = 12
    spec.write_text(yaml.safe_dump(data))
    c = build_study(spec, tmp_path / "three")
    assert tree_bytes(c)["versions.json"] != tree_bytes(a)["versions.json"]


def test_consistency_pairs_each_source_once_per_question(tmp_path):
    spec = make_consistency_setup(tmp_path)
    study = open_study(build_study(spec, tmp_path / "studies" / "cons"))
    atlas = json.loads((tmp_path / "atlases" / "atlas-share" / "atlas.json").read_text())
    common = [atlas["pairs"]["data_dependent"][0]["a"], atlas["pairs"]["data_dependent"][0]["b"]]
    key = study.key
    questions = [i for i, k in key.items() if k["kind"] == "consistency"]
    assert len(questions) == 20
    sides = Counter(key[i]["left_source"] for i in questions)
    assert set(sides) == {"data_dependent", "euclidean"} and min(sides.values()) >= 5
    for i in questions:
        assert {key[i]["left_source"], key[i]["right_source"]} == {"data_dependent", "euclidean"}
        assert common not in (key[i]["left_pair"], key[i]["right_pair"])   # found by both: left out
        assert len(study.items[i]["media"]) == 2
    # 4 versions x 5 questions: every question used exactly once, versions disjoint
    used = [i for seq in study.versions for i in seq if key[i]["kind"] == "consistency"]
    assert sorted(used) == sorted(questions)
    with Image.open(study.root / study.items[questions[0]]["media"][0]) as im:
        assert im.size == (3 * 160 + 2 * 8, 2 * 160 + 8)      # media.patch_size 160 by default: >= 448 px wide
        assert (255, 221, 0) in {c for _, c in im.getcolors(1 << 16)}          # yellow boxes drawn


def test_latin_square_blocks(tmp_path):
    spec = make_saliency_setup(tmp_path, n_images=12, datasets=("birds",), pool_size=10, items_per_version=4,
                               versions=6, order="latin-square", attention={"count": 0})
    study = open_study(build_study(spec, tmp_path / "ls"))
    key = study.key
    firsts = []
    for seq in study.versions:
        methods = [key[i]["method"] for i in seq]
        blocks = [methods[j] for j in range(0, len(methods), 4)]
        assert all(len(set(methods[j:j + 4])) == 1 for j in range(0, len(methods), 4))   # contiguous blocks
        firsts.append(blocks[0])
    assert len(set(firsts)) == 3 and set(Counter(firsts).values()) == {2}


def test_balanced_assignment_properties():
    import random
    rng = random.Random(0)
    pool = [f"i{j}" for j in range(30)]
    chosen = assign_balanced(pool, 50, 10, rng)
    uses = Counter(i for v in chosen for i in v)
    assert all(len(set(v)) == 10 for v in chosen)
    assert max(uses.values()) - min(uses.values()) <= 1 and sum(uses.values()) == 500
    with pytest.raises(ValueError):
        assign_balanced(pool, 2, 31, rng)
    square = balanced_latin_square(4)
    assert all(sorted(r) == [0, 1, 2, 3] for r in square)
    assert all(sorted(col) == [0, 1, 2, 3] for col in zip(*square))


def test_failed_build_leaves_nothing(tmp_path, capsys):
    spec = make_saliency_setup(tmp_path, n_images=12, datasets=("birds",), pool_size=20)
    out = tmp_path / "studies" / "x"
    with pytest.raises(StudyError, match=r"saliency.yaml: field 'pool_size': atlas .* has only 12 usable stimuli"):
        build_study(spec, out)
    assert not (tmp_path / "studies").exists()
    # an unreadable overlay, found while rendering: one line naming it, nothing on disk
    spec = make_saliency_setup(tmp_path, n_images=12, datasets=("birds",), pool_size=12, items_per_version=3)
    bad = sorted((tmp_path / "atlases" / "atlas-zeta-tree-birds" / "overlays").iterdir())[3]
    bad.write_bytes(b"not a png")
    (tmp_path / "studies").mkdir()
    with pytest.raises(StudyError, match=rf"{bad.name}: not a readable image"):
        build_study(spec, out)
    assert list((tmp_path / "studies").iterdir()) == []
    # the CLI prints one line, exit 1
    assert study_main(["build", str(spec), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a readable image" in err[0]


def test_existing_folder_needs_force(tmp_path):
    spec = make_consistency_setup(tmp_path)
    out = build_study(spec, tmp_path / "c")
    with pytest.raises(StudyError, match="already exists"):
        build_study(spec, out)
    assert build_study(spec, out, overwrite=True) == out
    (out / "answers.sqlite").write_bytes(b"")            # answers were collected: never overwrite them
    with pytest.raises(StudyError, match="holds collected answers"):
        build_study(spec, out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_build(tmp_path, capsys):
    spec = make_consistency_setup(tmp_path)
    assert study_main(["build", str(spec), "--out", str(tmp_path / "studies" / "cli-study")]) == 0
    assert "cli-study" in capsys.readouterr().out
    assert open_study(tmp_path / "studies" / "cli-study").id == "cli-study"


def test_generic_likert_study(tmp_path):
    spec = make_saliency_setup(tmp_path, n_images=12, datasets=("birds",), kind="likert", pool_size=6,
                               items_per_version=2, versions=3, attention={"count": 1},
                               wording={"question": "How clear is the marked region?",
                                        "scale": {"points": 7, "labels": {1: "not clear", 7: "very clear"}}})
    study = open_study(build_study(spec, tmp_path / "lk"))
    assert [o["value"] for o in study.options] == [str(i) for i in range(1, 8)]
    assert study.options[0]["label"] == "1 (not clear)" and study.options[3]["label"] == "4"
    regular = [i for i in study.items.values() if i["kind"] == "likert"]
    assert regular and all(i["question"] == "How clear is the marked region?" for i in regular)
    attention = next(i for i in study.items.values() if i["kind"] == "attention")
    expected = next(v["expected"] for v in study.key.values() if v["kind"] == "attention")
    label = next(o["label"] for o in study.options if o["value"] == expected)
    assert f'"{label}"' in attention["question"]
    assert all(len(seq) == 3 * 2 + 1 for seq in study.versions)


def test_same_images_gives_every_method_the_same_pool(tmp_path):
    spec = make_saliency_setup(tmp_path, n_images=14, datasets=("birds",), pool_size=8, items_per_version=8,
                               versions=2, same_images=True, attention={"count": 0})
    key = open_study(build_study(spec, tmp_path / "same")).key
    per_method: dict = {}
    for info in key.values():
        per_method.setdefault(info["method"], set()).add(info["image_id"])
    assert len(per_method) == 3 and len({frozenset(s) for s in per_method.values()}) == 1
    assert len(next(iter(per_method.values()))) == 8


def test_sides_are_counterbalanced():
    import random
    from collections import Counter

    from study.select import balanced_sides

    for n in (1, 2, 7, 8, 30):
        sides = balanced_sides(n, random.Random(n))
        assert len(sides) == n
        assert abs(sum(sides) - n / 2) <= 0.5
    # the order is random, not a fixed pattern
    orders = Counter(tuple(balanced_sides(8, random.Random(seed))) for seed in range(20))
    assert len(orders) > 5


def _two_atlas_spec(tmp_path, other_set, **extra):
    from study_helpers import make_atlas

    make_atlas(tmp_path / "atlases" / "a-pool", "a-pool", "PoolSecret", "birds", n_images=12, seed=1)
    make_atlas(tmp_path / "atlases" / "a-other", "a-other", "OtherSecret", "birds", n_images=12, seed=2,
               image_set=other_set)
    spec = {"kind": "saliency", "seed": 3, "methods": ["atlases/a-pool", "atlases/a-other"], "pool_size": 4,
            "items_per_version": 2, "versions": 2, **extra}
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_atlases_of_different_image_sets_are_refused_naming_both(tmp_path):
    """One data set name, two image sets: one line naming both atlases and what differs;
    nothing is written."""
    spec = _two_atlas_spec(tmp_path, "another folder of birds")
    with pytest.raises(StudyError) as err:
        build_study(spec, tmp_path / "studies" / "mixed")
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"{spec}: field 'methods': atlases ")
    assert str(tmp_path / "atlases" / "a-pool") in line and str(tmp_path / "atlases" / "a-other") in line
    assert "different image sets under data set 'birds': same classes and 12 images, but other image ids" in line
    assert "mixed_image_sets" in line
    assert not (tmp_path / "studies" / "mixed").exists()


def test_mixed_image_sets_opt_in_builds_and_is_recorded(tmp_path):
    spec = _two_atlas_spec(tmp_path, "another folder of birds", mixed_image_sets=["birds"])
    out = build_study(spec, tmp_path / "studies" / "mixed")
    manifest = json.loads((out / "study.json").read_text())
    assert manifest["mixed_image_sets"] == ["birds"]
    key = json.loads((out / "private" / "key.json").read_text())
    assert len({m["image_set"] for m in key["methods"]}) == 2
    same = _two_atlas_spec(tmp_path / "same", "")            # one image set: recorded as not mixed
    assert json.loads((build_study(same, tmp_path / "studies" / "same") / "study.json").read_text()
                      )["mixed_image_sets"] == []
    bad = _two_atlas_spec(tmp_path / "typo", "x", mixed_image_sets=["bird"])
    with pytest.raises(StudyError, match=r"field 'mixed_image_sets': no atlas is for data set 'bird'"):
        build_study(bad, tmp_path / "studies" / "typo")


def test_an_atlas_without_image_set_identity_says_how_to_add_it(tmp_path):
    spec = _two_atlas_spec(tmp_path, None)
    with pytest.raises(StudyError) as err:
        build_study(spec, tmp_path / "studies" / "old")
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f"{tmp_path / 'atlases' / 'a-other' / 'atlas.json'}: field 'dataset.image_set': missing")
    assert f"python -m core image-set {tmp_path / 'atlases' / 'a-other'}" in line
