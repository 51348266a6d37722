"""Naming rules (SPEC §4) on a small hand-built set of CUB annotations."""
import json

import numpy as np
import pytest

from core.data.cub import CubAnnotations
from core.errors import FormatError
from core.naming import cli
from core.naming.naming import Namer, read_nearest_file
from core.naming.rules import NamingRules

PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing",
         "nape", "right eye", "right leg", "right wing", "tail", "throat"]
ATTRS = ["has_wing_color::yellow", "has_wing_color::black", "has_wing_pattern::striped",
         "has_bill_shape::needle", "has_tail_shape::notched_tail", "has_upper_tail_color::black",
         "has_breast_color::red"]
# part locations (x, y) shared by every image; the far parts sit in a corner
LOC = {"left wing": (100, 100), "right wing": (140, 100), "beak": (300, 40), "tail": (20, 200),
       "breast": (220, 120)}


def make_annotations():
    n = 20  # ids 1..20; class 0 = ids 1..10, class 1 = 11..20; odd ids are train
    ids = np.arange(1, n + 1)
    labels = (ids > 10).astype(int)
    is_train = ids % 2 == 1
    locs = np.zeros((n, len(PARTS), 3))
    for p, name in enumerate(PARTS):
        x, y = LOC.get(name, (390, 290))
        locs[:, p] = (x, y, 1)
    present = np.zeros((n, len(ATTRS)), bool)
    cert = np.full((n, len(ATTRS)), 4, np.int8)
    c0 = labels == 0
    for a in ("has_wing_color::yellow", "has_wing_pattern::striped", "has_bill_shape::needle",
              "has_tail_shape::notched_tail", "has_upper_tail_color::black"):
        present[c0, ATTRS.index(a)] = True
    # black wing: present on class-0 *train* images only -> below 20% of the test images
    present[c0 & is_train, ATTRS.index("has_wing_color::black")] = True
    # red breast: present on every class-0 image but only guessed (certainty 2)
    present[c0, ATTRS.index("has_breast_color::red")] = True
    cert[c0, ATTRS.index("has_breast_color::red")] = 2
    return CubAnnotations(
        image_ids=ids, labels=labels, is_train=is_train, class_names=["A_bird", "B_bird"],
        bboxes=np.tile([0.0, 0.0, 400.0, 300.0], (n, 1)), part_names=PARTS, part_locs=locs,
        attribute_names=ATTRS, attribute_groups=[a.split("::")[0] for a in ATTRS],
        is_present=present, certainty=cert, certainty_names=["not visible", "guessing", "probably", "definitely"],
        class_attribute_percent=np.zeros((2, len(ATTRS))))


def box_at(name, half=15):
    x, y = LOC[name]
    return [x - half, y - half, x + half, y + half]


def patches(parts, ids=(1, 2, 3, 4, 5)):
    return [{"image_id": i, "box": box_at(p)} for i, p in zip(ids, parts)]


@pytest.fixture(scope="module")
def namer():
    return Namer(make_annotations())


def test_wing_named_and_sides_merged(namer):
    ev = namer.name(7, patches(["left wing", "right wing", "left wing", "right wing", "left wing"]))
    assert ev["status"] == "named" and ev["part"] == "wing"
    assert ev["name"] == "striped yellow wing"
    assert ev["part_votes"] == {"wing": 5}
    assert [p["part_location"] for p in ev["patches"]][:2] == ["left wing", "right wing"]
    top = ev["attributes"][0]
    assert top["attribute"] == "has_wing_color::yellow" and top["support"] == 1.0 and top["images"] == [1, 2, 3, 4, 5]


def test_class_threshold_drops_attribute_rare_in_test_images(namer):
    ev = namer.name(0, patches(["left wing"] * 5))
    assert "has_wing_color::black" not in [a["attribute"] for a in ev["attributes"]]
    relaxed = Namer(make_annotations(), NamingRules(class_split="train")).name(0, patches(["left wing"] * 5))
    assert "has_wing_color::black" in [a["attribute"] for a in relaxed["attributes"]]


def test_certainty_cut_drops_guesses(namer):
    ev = namer.name(0, patches(["breast"] * 5))
    assert ev["part"] == "breast" and ev["status"] == "no_attribute" and ev["name"] is None
    guessing_ok = Namer(make_annotations(), NamingRules(min_certainty=2)).name(0, patches(["breast"] * 5))
    assert guessing_ok["name"] == "red breast"


def test_tail_and_bill_names(namer):
    assert namer.name(0, patches(["tail"] * 5))["name"] == "notched black tail"
    assert namer.name(0, patches(["beak"] * 5))["name"] == "needle-shaped bill"


def test_inconsistent_parts_flagged_not_named(namer):
    ev = namer.name(3, patches(["left wing", "left wing", "left wing", "beak", "tail"]))
    assert ev["status"] == "inconsistent" and ev["name"] is None and ev["part"] is None
    assert ev["part_votes"] == {"wing": 3, "beak": 1, "tail": 1}
    loose = Namer(make_annotations(), NamingRules(part_consistency=3)).name(3, patches(
        ["left wing", "left wing", "left wing", "beak", "tail"]))
    assert loose["status"] == "named" and loose["name"] == "striped yellow wing"


def test_four_of_five_is_enough_and_support_counts_agreeing_patches(namer):
    # one of the wing patches is on a class-1 image, where no wing attribute holds
    ev = namer.name(1, patches(["left wing"] * 4 + ["beak"], ids=(1, 3, 5, 11, 7)))
    assert ev["status"] == "named"
    yellow = next(a for a in ev["attributes"] if a["attribute"] == "has_wing_color::yellow")
    assert yellow["support"] == 0.75 and yellow["images"] == [1, 3, 5]


def test_the_name_must_hold_on_the_first_patch(namer):
    """Step 5 (source_must_hold): the first patch is the prototype's own (its source after
    projection, shown first in an atlas). On another part than the vote: inconsistent, not
    named from the other four; an attribute that does not hold on its image stays out of
    the name even with support 0.8; --any-source names as before."""
    off = namer.name(2, patches(["beak"] + ["left wing"] * 4))
    assert off["status"] == "inconsistent" and off["name"] is None and off["part_votes"] == {"wing": 4, "beak": 1}
    # first patch on a class-1 image (no wing attribute holds there), the other four yellow wings
    other_source = patches(["left wing"] * 5, ids=(11, 1, 3, 5, 7))
    ev = namer.name(2, other_source)
    assert ev["status"] == "no_attribute" and ev["name"] is None
    loose = Namer(make_annotations(), NamingRules(source_must_hold=False))
    assert loose.name(2, patches(["beak"] + ["left wing"] * 4))["name"] == "striped yellow wing"
    assert loose.name(2, other_source)["name"] == "striped yellow wing"
    assert NamingRules().source_must_hold is True


def test_invisible_and_far_parts(namer):
    ann = make_annotations()
    ann.part_locs[:, PARTS.index("left wing"), 2] = 0  # left wing hidden: right wing is next nearest
    wide = [{"image_id": i, "box": box_at("left wing", half=30)} for i in range(1, 6)]
    ev = Namer(ann).name(0, wide)  # right wing is 40 px away, within the 42 px half-diagonal
    assert {p["part_location"] for p in ev["patches"]} == {"right wing"}
    assert {p["part_distance"] for p in ev["patches"]} == {40.0}
    assert Namer(ann).name(0, patches(["left wing"] * 5))["status"] == "no_part"  # 21 px: too far
    far = [{"image_id": i, "box": [180, 230, 200, 250]} for i in range(1, 6)]
    assert namer.name(0, far)["status"] == "no_part"


def test_whole_bird_box():
    ann = make_annotations()
    big = [{"image_id": i, "box": [0, 0, 400, 300]} for i in range(1, 6)]
    assert Namer(ann).name(0, big)["part"] == "bird"
    assert Namer(ann, NamingRules(whole_bird_parts=0)).name(0, big)["part"] != "bird"


def test_rules_validate():
    assert [NamingRules.for_k(k).part_consistency for k in (1, 3, 5, 10)] == [1, 3, 4, 8]
    assert NamingRules.for_k(5, part_consistency=5).part_consistency == 5
    with pytest.raises(ValueError):
        NamingRules(part_consistency=6)
    with pytest.raises(ValueError):
        NamingRules(class_split="val")


def test_nearest_file_validation(tmp_path):
    good = {"format": "protoproto-nearest", "version": 1,
            "prototypes": [{"id": 0, "nearest": patches(["beak"] * 5)}]}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(good))
    assert read_nearest_file(path)[0]["nearest"][0]["image_id"] == 1
    bad_cases = [
        ({**good, "version": 0}, "version"),
        ({**good, "format": "other"}, "format"),
        ({**good, "prototypes": [{"id": 0, "nearest": [{"image_id": 1, "box": [5, 5, 2, 9]}]}]}, "box"),
        ({**good, "prototypes": [{"id": "x", "nearest": []}]}, "id"),
    ]
    for doc, field in bad_cases:
        path.write_text(json.dumps(doc))
        with pytest.raises(FormatError, match=field):
            read_nearest_file(path)
    path.write_text("{not json")
    with pytest.raises(FormatError, match="JSON"):
        read_nearest_file(path)


def test_cli_rule_options():
    from core.errors import UserFacingError
    args = cli.build_parser().parse_args(["--cub-root", "x", "--nearest", "n.json", "--out", "o.json", "--k", "10"])
    rules = cli.rules_from_args(args)
    assert rules.k == 10 and rules.part_consistency == 8 and rules.min_certainty == 3
    args = cli.build_parser().parse_args(["--cub-root", "x", "--nearest", "n", "--out", "o", "--part-consistency", "6"])
    with pytest.raises(UserFacingError, match="part_consistency"):
        cli.rules_from_args(args)


def test_cell_box_locates_the_patch_instead_of_the_display_box():
    ann = make_annotations()
    big = [0, 0, 400, 300]                          # a display box holding the whole bird
    cell = box_at("tail", half=6)                   # the feature cell sits on the tail
    with_cells = [{"image_id": i, "box": big, "cell_box": cell} for i in range(1, 6)]
    ev = Namer(ann).name(0, with_cells)
    assert ev["part"] == "tail" and ev["status"] == "named" and "tail" in ev["name"]
    assert all(p["cell_box"] == [float(v) for v in cell] and p["part_distance"] == 0.0 for p in ev["patches"])
    assert Namer(ann).name(0, [{"image_id": i, "box": big} for i in range(1, 6)])["part"] == "bird"
    # the tail in the next cell still counts (cell_margin 1), 3.5 cells away it does not
    x, y = LOC["tail"]
    near = [{"image_id": i, "box": big, "cell_box": [x + 5, y - 5, x + 15, y + 5]} for i in range(1, 6)]
    assert Namer(ann).name(0, near)["part"] == "tail"
    far = [{"image_id": i, "box": box_at("tail"), "cell_box": [x + 35, y - 5, x + 45, y + 5]} for i in range(1, 6)]
    assert Namer(ann).name(0, far)["status"] == "no_part"
    assert Namer(ann, NamingRules(cell_margin=4)).name(0, far)["part"] == "tail"
    with pytest.raises(ValueError):
        NamingRules(cell_margin=-1)


def test_nearest_file_reads_optional_cell_box(tmp_path):
    path = tmp_path / "n.json"
    near = [{"image_id": 1, "box": box_at("beak"), "cell_box": [1, 2, 3, 4]}, {"image_id": 2, "box": box_at("beak")}]
    path.write_text(json.dumps({"format": "protoproto-nearest", "version": 1,
                                "prototypes": [{"id": 0, "nearest": near}]}))
    got = read_nearest_file(path)[0]["nearest"]
    assert got[0]["cell_box"] == [1.0, 2.0, 3.0, 4.0] and "cell_box" not in got[1]
    near[0]["cell_box"] = [3, 2, 1, 4]
    path.write_text(json.dumps({"format": "protoproto-nearest", "version": 1,
                                "prototypes": [{"id": 0, "nearest": near}]}))
    with pytest.raises(FormatError, match="cell_box"):
        read_nearest_file(path)
