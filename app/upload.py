"""Checking an uploaded image before accepting it.

Why by content: a file name or a browser's MIME type says nothing about the bytes.
The byte and pixel limits are the ones imported heatmaps get (common/images.py): the
size is read from the PNG/JPEG header before anything decodes the pixels, so a huge
or malformed file is refused cheaply, with one message saying what is wrong. Only then
is the image decoded in full, so a file whose header is fine but whose pixel data is
broken (truncated, corrupt compressed data) is refused here rather than later.
"""
from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from common.errors import ToolkitError
from common.images import MAX_BYTES, MAX_PIXELS, ImageLimitError, check_pixels, check_size, header_size

FORMATS = {"PNG": "png", "JPEG": "jpg"}
MIN_SIDE = 8
__all__ = ["MAX_BYTES", "MAX_PIXELS", "FORMATS", "UploadError", "check_image"]


class UploadError(ToolkitError, ValueError):
    """The one-line reason an upload is refused."""


def _format_name(data: bytes) -> str | None:
    """PIL's name of the format (header only), for the message about a wrong type."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.format
    except Exception:  # noqa: BLE001 - unknown or broken: no name
        return None


def check_image(data: bytes, name: str = "upload") -> tuple[str, tuple[int, int]]:
    """(file extension, (width, height)) of a PNG/JPEG image that decodes in full; UploadError otherwise."""
    try:
        check_size(len(data))
    except ImageLimitError as exc:
        raise UploadError(f"{name}: {exc}") from None
    try:
        _, width, height = header_size(data)
    except ImageLimitError:
        fmt = _format_name(data)
        if fmt and fmt not in FORMATS:
            raise UploadError(f"{name}: the file is {fmt}, not PNG or JPEG") from None
        raise UploadError(f"{name}: not a readable PNG or JPEG image") from None
    try:
        check_pixels(width, height, MIN_SIDE)
    except ImageLimitError as exc:
        raise UploadError(f"{name}: {exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own limit is lower
            with Image.open(io.BytesIO(data)) as image:
                fmt, size = image.format, image.size
                image.verify()                  # structure and PNG chunk CRCs
            with Image.open(io.BytesIO(data)) as image:
                image.load()                    # every pixel decodes (verify() does not decode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UploadError(f"{name}: not a readable PNG or JPEG image ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'broken data'})") from None
    if fmt not in FORMATS or size != (width, height):
        raise UploadError(f"{name}: not a readable PNG or JPEG image (its header is inconsistent)")
    return FORMATS[fmt], size
