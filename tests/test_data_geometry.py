"""Geometry: crop + resize arithmetic between model-input and original pixels."""
from __future__ import annotations

import numpy as np
import pytest

from core.data.geometry import Geometry, crop_box_for


def test_known_values():
    g = Geometry((10.0, 20.0, 110.0, 70.0), 50)  # 100 x 50 crop -> 50 x 50
    assert g.scale == (2.0, 1.0)
    np.testing.assert_allclose(g.to_original_points([[0, 0], [50, 50], [25, 10]]),
                               [[10, 20], [110, 70], [60, 30]])
    np.testing.assert_allclose(g.to_model_points([[10, 20], [110, 70], [60, 30]]),
                               [[0, 0], [50, 50], [25, 10]])
    assert g.to_model_box((10, 20, 110, 70)) == (0.0, 0.0, 50.0, 50.0)
    assert g.to_original_box((0, 0, 25, 25)) == (10.0, 20.0, 60.0, 45.0)


def test_round_trip_random_points():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x0, y0 = rng.uniform(0, 200, 2)
        g = Geometry((x0, y0, x0 + rng.uniform(5, 300), y0 + rng.uniform(5, 300)), int(rng.integers(16, 300)))
        pts = rng.uniform(-50, 500, (30, 2))
        np.testing.assert_allclose(g.to_original_points(g.to_model_points(pts)), pts, atol=1e-9)
        np.testing.assert_allclose(g.to_model_points(g.to_original_points(pts)), pts, atol=1e-9)


def test_cells_tile_the_crop():
    g = Geometry((4.0, 8.0, 228.0, 120.0), 224)
    grid = 7
    boxes = [g.cell_to_original_box(r, c, grid) for r in range(grid) for c in range(grid)]
    assert boxes[0][:2] == pytest.approx((4.0, 8.0))
    assert boxes[-1][2:] == pytest.approx((228.0, 120.0))
    area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
    assert area == pytest.approx(224.0 * 112.0)
    assert g.cell_center_original(3, 3, grid) == pytest.approx((116.0, 64.0))
    assert g.cell_box(0, 1, (2, 4)) == pytest.approx((56.0, 0.0, 112.0, 112.0))


def test_crop_box_clipping_and_fallback():
    assert crop_box_for((-5, 10, 50, 400), (100, 200), True) == (0.0, 10.0, 50.0, 200.0)
    assert crop_box_for((10, 10, 50, 50), (100, 200), False) == (0.0, 0.0, 100.0, 200.0)
    assert crop_box_for(None, (100, 200), True) == (0.0, 0.0, 100.0, 200.0)
    assert crop_box_for((120, 10, 150, 50), (100, 200), True) == (0.0, 0.0, 100.0, 200.0)  # outside


def test_empty_crop_rejected():
    with pytest.raises(ValueError):
        Geometry((10, 10, 10, 20), 32)
