"""Limits for the images we accept (app uploads, imported heatmaps and their photographs),
checked from the file header before anything decodes the pixels.

Why from the header: a PNG of a few hundred KB can declare 100000 x 100000 pixels (a
"decompression bomb"); decoding it takes gigabytes and seconds, and OpenCV refuses very
large ones with a traceback. The width and height sit in the first bytes of a PNG (IHDR)
and of a JPEG (its SOF segment), so the check is cheap and needs no image library.
"""
from __future__ import annotations

import struct

from common.errors import ToolkitError

MAX_BYTES = 10 * 1024 * 1024          # 10 MB per file
MAX_PIXELS = 40_000_000               # 40 megapixels
MIN_SIDE = 1

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


class ImageLimitError(ToolkitError, ValueError):
    """The one-line reason (without the file name) an image is refused."""


def image_kind(head: bytes) -> str | None:
    """'png', 'jpg' or None, from the first bytes of a file."""
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    return None


def header_size(data: bytes) -> tuple[str, int, int]:
    """(kind 'png'|'jpg', width, height) read from the header of PNG or JPEG bytes;
    ImageLimitError if the bytes are neither or the header is broken."""
    kind = image_kind(data[:8])
    if kind == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageLimitError("a PNG without a valid header (IHDR)")
        width, height = struct.unpack(">II", data[16:24])
        return kind, width, height
    if kind == "jpg":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                raise ImageLimitError("a JPEG with a broken header")
            marker = data[i + 1]
            if marker == 0xFF:          # fill byte
                i += 1
                continue
            if marker in _JPEG_STANDALONE:
                i += 2
                continue
            if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
                break
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in _JPEG_SOF:
                if length < 7 or i + 9 > len(data):
                    break
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return kind, width, height
            i += 2 + length
        raise ImageLimitError("a JPEG without a frame header (SOF)")
    raise ImageLimitError("not a PNG or JPEG image")


def check_size(n_bytes: int) -> None:
    if n_bytes == 0:
        raise ImageLimitError("the file is empty")
    if n_bytes > MAX_BYTES:
        raise ImageLimitError(f"{n_bytes / 1e6:.1f} MB is more than the {MAX_BYTES // (1024 * 1024)} MB allowed")


def check_pixels(width: int, height: int, min_side: int = MIN_SIDE) -> None:
    if width * height > MAX_PIXELS:
        raise ImageLimitError(f"{width}x{height} is more than {MAX_PIXELS // 1_000_000} megapixels")
    if min(width, height) < min_side:
        raise ImageLimitError(f"{width}x{height} is too small (at least {min_side} px per side)")


def check_image_bytes(data: bytes, min_side: int = MIN_SIDE) -> tuple[str, int, int]:
    """Size, kind and pixel count of PNG/JPEG bytes within the limits: (kind, width, height)."""
    check_size(len(data))
    kind, width, height = header_size(data)
    check_pixels(width, height, min_side)
    return kind, width, height
