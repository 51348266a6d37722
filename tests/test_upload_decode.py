"""Uploads are decoded in full before they are accepted, under the same limits as imported
heatmaps (one place: common/images.py)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import app.upload as upload
import common.images as limits
from app.upload import UploadError, check_image
from image_bombs import jpeg_huge_header, png_bomb, png_undecodable


def _jpeg(size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_a_png_whose_pixels_do_not_decode_is_refused():
    data = png_undecodable(64, 48)
    with Image.open(io.BytesIO(data)) as image:     # what the old check relied on passes
        assert image.size == (64, 48)
        image.verify()
    with pytest.raises(UploadError) as err:
        check_image(data, "scan.png")
    assert str(err.value).startswith("scan.png: not a readable PNG or JPEG image") and "\n" not in str(err.value)


def test_a_truncated_jpeg_is_refused():
    data = _jpeg()
    check_image(data, "ok.jpg")
    with pytest.raises(UploadError, match="not a readable PNG or JPEG image"):
        check_image(data[: len(data) // 2], "cut.jpg")


@pytest.mark.parametrize("make, words", [(png_bomb, "10000x10000 is more than 40 megapixels"),
                                         (jpeg_huge_header, "60000x60000 is more than 40 megapixels")])
def test_bombs_are_refused_from_the_header(make, words):
    with pytest.raises(UploadError, match=words):
        check_image(make(), "bomb.png")


def test_one_place_for_the_limits():
    assert upload.MAX_BYTES is limits.MAX_BYTES == 10 * 1024 * 1024
    assert upload.MAX_PIXELS is limits.MAX_PIXELS == 40_000_000
