"""Overlays, colours and boxes (SPEC §3) on small hand-built maps."""
import numpy as np
import pytest

from core.explain import overlay as ov


def _peak_map(row, col, shape=(7, 7)):
    m = np.zeros(shape, dtype=np.float32)
    m[row, col] = 5.0
    return m


def test_jet_is_rgb_high_is_red_low_is_blue():
    colours = ov.jet_rgb(np.array([[0.0, 1.0]], dtype=np.float32))
    low, high = colours[0, 0], colours[0, 1]
    assert low[2] > 100 and low[0] < 10          # blue end
    assert high[0] > 100 and high[2] < 10        # red end


def test_normalise_min_max_and_constant():
    n = ov.normalise(np.array([[2.0, 4.0], [3.0, 6.0]]))
    assert n.min() == 0.0 and n.max() == 1.0 and n[0, 1] == pytest.approx(0.5)
    assert not ov.normalise(np.full((3, 3), 7.0)).any()


def test_overlay_blend_weights_over_unnormalised_image():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    act = rng.random((7, 7)).astype(np.float32)
    out = ov.overlay(image, act)
    heat = ov.jet_rgb(ov.normalise(ov.upsample(act, (224, 224))))
    expected = np.clip(0.5 * image + 0.3 * heat, 0, 255)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(float) - expected).max() <= 1.0


def test_upsampling_is_bicubic_and_keeps_peak_location():
    up = ov.upsample(_peak_map(2, 5), (224, 224))
    y, x = np.unravel_index(np.argmax(up), up.shape)
    assert 2 * 32 <= y < 3 * 32 and 5 * 32 <= x < 6 * 32
    assert up.min() < 0  # bicubic overshoots below zero next to a spike (bilinear would not)


def test_high_activation_box_is_smallest_box_of_top_5_percent():
    rng = np.random.default_rng(1)
    up = ov.upsample(rng.random((7, 7)).astype(np.float32), (100, 120))
    x0, y0, x1, y1 = ov.high_activation_box(up)
    mask = up >= np.percentile(up, 95)
    ys, xs = np.nonzero(mask)
    assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert mask.sum() >= 0.05 * up.size - 1


def test_box_around_single_peak_is_near_that_cell():
    x0, y0, x1, y1 = ov.map_box(_peak_map(6, 0), (224, 224))
    assert x0 == 0 and y1 == 224 and x1 <= 80 and y0 >= 144


def test_map_on_original_places_crop_and_box():
    act = _peak_map(0, 6)
    full, box = ov.map_on_original(act, (100.5, 50.2, 300.0, 250.0), (400, 500))
    assert full.shape == (400, 500)
    reach = int(np.ceil(ov.FEATHER * 200)) + 1     # outside the crop: a fade that ends within reach
    assert not full[:, :100 - reach].any() and not full[:50 - reach, :].any() and not full[:, 300 + reach:].any()
    assert full[50:250, 100:300].max() == 1.0
    inside = ov.normalise(ov.upsample(act, (200, 200)))
    np.testing.assert_array_equal(full[50:250, 100:300], inside)     # the crop's map exactly
    x0, y0, x1, y1 = box
    assert 220 <= x0 < x1 <= 300 and 50 <= y0 < y1 <= 130


def test_overlay_on_original_same_size_as_image():
    image = np.full((120, 90, 3), 200, dtype=np.uint8)
    out, box = ov.overlay_on_original(image, _peak_map(3, 3), (10, 10, 80, 110))
    assert out.shape == image.shape
    assert 10 <= box[0] < box[2] <= 80


def test_draw_boxes_yellow_border_only():
    image = np.zeros((50, 60, 3), dtype=np.uint8)
    out = ov.draw_boxes(image, [(10, 20, 30, 40)], thickness=1)
    assert tuple(out[20, 15]) == (255, 255, 0) and tuple(out[39, 29]) == (255, 255, 0)
    assert not out[30, 20].any() and not out[5, 5].any()
    assert not image.any()  # input untouched


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        ov.overlay(np.zeros((10, 10, 3), dtype=np.float32), np.zeros((7, 7)))
    with pytest.raises(ValueError):
        ov.upsample(np.zeros((2, 3, 4)), (10, 10))


def test_box_of_binary_map_with_small_hot_spot():
    m = np.zeros((100, 100), np.float32)
    m[10:20, 60:70] = 1.0   # 1% of the pixels: the 95th percentile is the floor
    assert ov.high_activation_box(m) == (60, 10, 70, 20)
    assert ov.high_activation_box(np.ones((5, 8), np.float32)) == (0, 0, 8, 5)


def test_overlay_has_no_step_edge_along_the_crop_border():
    """A map whose activation is high along the crop's edges: across the crop border the
    rendered overlay changes no more than between neighbouring pixels inside (no
    rectangle); the old paste (0 outside the crop) jumped by over 50 levels."""
    image = np.full((300, 400, 3), 128, dtype=np.uint8)
    act = np.ones((7, 7), dtype=np.float32)
    act[3, 3] = 0.0                                       # low centre, high edges
    crop = (80, 60, 320, 260)
    out, _ = ov.overlay_on_original(image, act, crop)
    out = out.astype(np.int16)
    x0, y0, x1, y1 = crop
    across = np.concatenate([
        np.abs(out[y0, x0:x1] - out[y0 - 1, x0:x1]).ravel(), np.abs(out[y1 - 1, x0:x1] - out[y1, x0:x1]).ravel(),
        np.abs(out[y0:y1, x0] - out[y0:y1, x0 - 1]).ravel(), np.abs(out[y0:y1, x1 - 1] - out[y0:y1, x1]).ravel()])
    inner = np.abs(np.diff(out[y0:y1, x0:x1], axis=1)).max()
    assert across.max() <= max(3, inner), (across.max(), inner)
    pasted = ov.blend(image, ov.jet_rgb(np.pad(ov.normalise(ov.upsample(act, (y1 - y0, x1 - x0))),
                                               ((y0, 300 - y1), (x0, 400 - x1)))))
    assert np.abs(pasted[y0, x0:x1].astype(np.int16) - pasted[y0 - 1, x0:x1]).max() > 50
