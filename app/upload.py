"""Checking an uploaded image before anything decodes it fully.

Why by content: a file name or a browser's MIME type says nothing about the bytes.
PIL reads the header (format and size) without decoding the pixels, so a huge or
malformed file is refused cheaply, with one message saying what is wrong.
"""
from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024          # 10 MB
MAX_PIXELS = 40_000_000               # 40 megapixels
FORMATS = {"PNG": "png", "JPEG": "jpg"}


class UploadError(ValueError):
    """The one-line reason an upload is refused."""


def check_image(data: bytes, name: str = "upload") -> tuple[str, tuple[int, int]]:
    """(file extension, (width, height)) of a PNG/JPEG image; UploadError otherwise."""
    if len(data) == 0:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_BYTES:
        raise UploadError(f"{name}: {len(data) / 1e6:.1f} MB is more than the {MAX_BYTES // (1024 * 1024)} MB allowed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, size = image.format, image.size
                if fmt in FORMATS and size[0] * size[1] <= MAX_PIXELS:
                    image.verify()  # checks the structure (PNG chunks' CRCs) without decoding all pixels
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(f"{name}: the image has more than {MAX_PIXELS // 1_000_000} megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadError(f"{name}: not a readable PNG or JPEG image ({type(exc).__name__})") from None
    if fmt not in FORMATS:
        raise UploadError(f"{name}: the file is {fmt or 'of an unknown type'}, not PNG or JPEG")
    if size[0] * size[1] > MAX_PIXELS:
        raise UploadError(f"{name}: {size[0]}x{size[1]} is more than {MAX_PIXELS // 1_000_000} megapixels")
    if min(size) < 8:
        raise UploadError(f"{name}: {size[0]}x{size[1]} is too small (at least 8 px per side)")
    return FORMATS[fmt], size
