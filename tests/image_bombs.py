"""Hostile image files for the limit tests: PNG/JPEG headers that declare huge sizes, a real
PNG decompression bomb, a PNG whose pixel data does not decode."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, idat: bytes, colour_type: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_bomb(side: int = 10_000) -> bytes:
    """A valid grey PNG of side x side black pixels: ~100 KB on disk, side**2 bytes decoded."""
    comp = zlib.compressobj(9)
    row = bytes(side + 1)                      # filter byte 0 + a row of zeros
    parts = [comp.compress(row) for _ in range(side)]
    return png_bytes(side, side, b"".join(parts) + comp.flush())


def png_huge_header(side: int = 100_000) -> bytes:
    """A PNG whose header declares side x side pixels, with almost no data."""
    return png_bytes(side, side, zlib.compress(bytes(side + 1)))


def png_undecodable(width: int = 64, height: int = 48) -> bytes:
    """A PNG with a valid header and chunk CRCs but pixel data that is not a zlib stream."""
    return png_bytes(width, height, b"this is not zlib data" * 50, colour_type=2)


def jpeg_huge_header(width: int = 60_000, height: int = 60_000) -> bytes:
    """A small real JPEG whose frame header (SOF0) is patched to declare width x height."""
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)
