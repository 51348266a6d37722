"""Upload checks of the "Explain an image" page, and the explanation of an upload."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.upload import MAX_BYTES, UploadError, check_image


def _encode(fmt: str, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    arr = (np.arange(size[0] * size[1] * 3) % 251).astype(np.uint8).reshape(size[1], size[0], 3)
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size (the pixels are never there)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_png_and_jpeg_are_accepted_by_content():
    assert check_image(_encode("PNG"), "a.jpg") == ("png", (40, 30))    # the name does not matter
    assert check_image(_encode("JPEG"), "b.png") == ("jpg", (40, 30))


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"hello, not an image at all", "not a readable PNG or JPEG"),
    (_encode("GIF"), "GIF, not PNG or JPEG"),
    (_encode("BMP"), "BMP, not PNG or JPEG"),
    (_png_header_only(8000, 6000), "more than 40 megapixels"),
    (_png_header_only(100000, 100000), "megapixels"),
    (_encode("PNG", (4, 4)), "too small"),
    (_encode("PNG")[:60], "not a readable PNG or JPEG"),
])
def test_bad_uploads_get_one_clear_line(data, words):
    with pytest.raises(UploadError) as err:
        check_image(data, "photo.png")
    message = str(err.value)
    assert words in message and message.startswith("photo.png: ") and "\n" not in message


def test_too_many_bytes():
    with pytest.raises(UploadError, match="MB is more than the 10 MB allowed"):
        check_image(b"\x89PNG" + b"\0" * MAX_BYTES, "big.png")


def test_upload_is_explained_like_a_data_set_image(tmp_path):
    """An uploaded copy of a test image gets the same prediction and contributions as the
    image itself when the data set does not crop it (same pixels, same preprocessing)."""
    import torch

    from app.views.explain import upload_dataset
    from core.data import load_dataset
    from core.data.synthetic import make_synthetic
    from core.explain.local import explain_image
    from core.architectures import build_model
    from core.model.config import ModelConfig

    root = make_synthetic(tmp_path / "birds", classes=3, images_per_class=4, size=64, seed=3)
    test = load_dataset("cub", root, split="test", image_size=64, crop_to_bbox=False)
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture="protopool", backbone="resnet18", weights="none",
                                    truncate="layer2", prototype_depth=8, num_prototypes=6, num_slots=2,
                                    num_classes=3)).eval()
    data = test.records[1].path.read_bytes()
    ext, _ = check_image(data, "bird.jpg")
    path = tmp_path / f"upload.{ext}"
    path.write_bytes(data)
    ds = upload_dataset(path, test)
    assert ds.class_names == test.class_names and len(ds) == 1
    a = explain_image(model, test, 1, device="cpu")
    b = explain_image(model, ds, 0, device="cpu")
    assert a.predicted == b.predicted
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-5, atol=1e-5)
    rows_a = [r.contribution for r in a.classes[a.predicted].rows]
    rows_b = [r.contribution for r in b.classes[b.predicted].rows]
    np.testing.assert_allclose(rows_a, rows_b, rtol=1e-5, atol=1e-5)
    assert b.classes[b.predicted].total == pytest.approx(b.classes[b.predicted].logit, abs=1e-4)
