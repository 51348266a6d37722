"""The demo figures' check of names against the drawing (core.metrics.figures)."""
from __future__ import annotations

import pytest

from core.errors import DataError
from core.metrics.figures import (inconsistent_on_one_region, names_against_drawing, names_match_source,
                                   region_cells_named)
from data_fixtures import synthetic_set, truth


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return synthetic_set(tmp_path_factory, size=128)


def _square(x, y, half=2.0):
    return [x - half, y - half, x + half, y + half]


def test_named_patches_are_checked_against_the_painted_regions(birds):
    images = truth(birds)["images"][:2]
    a, b = images
    tail = a["parts"]["tail"]
    on_tail = {"image_id": a["image_id"], "box": [0, 0, 5, 5], "cell_box": _square(tail[0], tail[1]), "part": "tail"}
    # a patch whose cell lies in the picture's corner, far from the bird, but voted "tail"
    corner = {"image_id": b["image_id"], "box": [0, 0, 5, 5], "cell_box": [0.0, 0.0, 3.0, 3.0], "part": "tail"}
    other_part = {"image_id": b["image_id"], "box": _square(*b["parts"]["belly"][:2]), "part": "belly"}
    records = [{"status": "named", "part": "tail", "patches": [on_tail, corner, other_part]},
               {"status": "inconsistent", "part": None, "patches": [on_tail]}]
    got = names_against_drawing(records, birds)
    # only the named prototype's patches on its agreed part count: the tail one is right,
    # the corner one is not; the belly patch (not on the agreed part) and the
    # inconsistent prototype are left out
    assert got == {"named_patches": 2, "named_patches_on_drawn_part": 0.5}
    # merged sides: a "wing" name is checked against the painted wing; without a cell
    # box the display box is used
    wing = b["parts"]["left wing"] if b["parts"]["left wing"][2] else b["parts"]["right wing"]
    patch = {"image_id": b["image_id"], "box": _square(wing[0], wing[1]), "part": "wing"}
    assert names_against_drawing([{"status": "named", "part": "wing", "patches": [patch]}],
                                 birds)["named_patches_on_drawn_part"] == 1.0


def test_names_against_drawing_needs_the_synthetic_truth(tmp_path):
    with pytest.raises(DataError, match="synthetic ground truth"):
        names_against_drawing([{"status": "named", "part": "tail",
                                "patches": [{"image_id": 1, "box": [0, 0, 1, 1], "part": "tail"}]}], tmp_path)


def test_inconsistent_prototypes_on_one_painted_region_are_told_apart(birds):
    """An inconsistent prototype whose patches all sit on one painted region was split
    only by the nearest-part vote (counted, with the parts it split between); one with a
    patch on the background is not; named prototypes are left out."""
    a, b = truth(birds)["images"][:2]
    on_tail = [{"image_id": im["image_id"], "box": [0, 0, 5, 5], "cell_box": _square(*im["parts"]["tail"][:2])}
               for im in (a, b)]
    corner = {"image_id": b["image_id"], "box": [0, 0, 5, 5], "cell_box": [0.0, 0.0, 3.0, 3.0], "part": "tail"}
    records = [{"status": "inconsistent", "part": None,
                "patches": [{**on_tail[0], "part": "tail"}, {**on_tail[1], "part": "back"}, {**on_tail[1], "part": "tail"}]},
               {"status": "inconsistent", "part": None, "patches": [{**on_tail[0], "part": "tail"}, corner]},
               {"status": "named", "part": "tail", "patches": [{**on_tail[0], "part": "tail"}]}]
    assert inconsistent_on_one_region(records, birds) == {
        "inconsistent": 2, "inconsistent_on_one_region": 1, "inconsistent_splits": {"back/tail": 1}}


def test_the_cell_a_region_covers_most_is_named_for_that_region(birds, tmp_path):
    """At the demo models' 8 x 8 cells the head's parts (crown, nape, throat) each get the
    cell their region covers most (they shared one cell before the head was drawn larger);
    at 16 x 16 the naming's one-cell margin leaves part locations out of reach of many
    cells, and the share drops."""
    coarse = region_cells_named(birds, image_size=64, grid=8, every=1)
    assert coarse["region_cells_named"] >= 0.95
    per_region = coarse["region_cells_named_by_region"]
    assert set(per_region) == {"back", "beak", "belly", "breast", "crown", "eye", "leg", "nape", "tail",
                               "throat", "wing"}
    assert min(per_region[k] for k in ("crown", "nape", "back", "wing", "tail")) >= 0.9
    fine = region_cells_named(birds, image_size=128, grid=(16, 16), every=1)
    assert fine["region_cells_named"] < coarse["region_cells_named"] - 0.05
    with pytest.raises(DataError, match="images.txt"):
        region_cells_named(tmp_path)


def test_a_name_is_checked_against_its_own_source_patch(birds):
    """Issue 25: a name must say what the drawing painted under the prototype's source
    patch (patch 0): the drawn value on that image, and the attribute's region in the
    cell. A wing name on a tail cell fails, as does a colour the image was not painted
    with; a name whose other patches are right but whose source is wrong still fails."""
    a = truth(birds)["images"][0]
    wing = a["parts"]["left wing"] if a["parts"]["left wing"][2] else a["parts"]["right wing"]
    on_wing = {"image_id": a["image_id"], "box": [0, 0, 5, 5], "cell_box": _square(wing[0], wing[1]), "part": "wing"}
    on_tail = {"image_id": a["image_id"], "box": [0, 0, 5, 5], "cell_box": _square(*a["parts"]["tail"][:2]),
               "part": "wing"}
    colour, shape = a["values"]["has_wing_color"], a["values"]["has_wing_shape"]
    other = next(c for c in ("blue", "red", "green") if c != colour)
    right = [f"has_wing_color::{colour}", f"has_wing_shape::{shape}"]

    def record(i, patches, attributes):
        return {"id": i, "status": "named", "name": " and ".join(attributes), "name_attributes": attributes,
                "patches": patches}

    records = [record(0, [on_wing, on_tail], right),               # matches
               record(1, [on_tail, on_wing], right),               # source on the tail
               record(2, [on_wing], [f"has_wing_color::{other}"]),  # not the painted colour
               {"id": 3, "status": "inconsistent", "name": None, "name_attributes": [], "patches": [on_tail]}]
    got = names_match_source(records, birds)
    assert got["names_match_source"] == pytest.approx(1 / 3)
    why = {f["id"]: f["why"] for f in got["names_match_source_failures"]}
    assert set(why) == {1, 2}
    assert all("source cell shows tail" in w for w in why[1])
    assert why[2] == [f"has_wing_color::{other}: drawn {colour}"]
