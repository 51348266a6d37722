"""Blinded stimulus images: rendered from pixels only, encoded deterministically.

Every image is rebuilt from its pixel data into a fresh RGB image, so nothing of the
source file (PNG text chunks, EXIF, ICC profile, file name) reaches a participant, and
PIL's PNG writer adds no timestamp: the same inputs always give the same bytes.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from study.errors import StudyError

YELLOW = (255, 221, 0)
BACKGROUND = (255, 255, 255)
GAP = 8


def load_rgb(path: Path) -> Image.Image:
    """Pixels of an image file as a fresh RGB image with no metadata attached."""
    try:
        with Image.open(path) as src:
            src.load()
            rgb = src.convert("RGB")
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path}: not a readable image ({exc})") from None
    return Image.frombytes("RGB", rgb.size, rgb.tobytes())


def png_bytes(img: Image.Image) -> bytes:
    """Deterministic PNG of the pixels only (no text chunks, no time, no profile)."""
    clean = Image.frombytes("RGB", img.size, img.convert("RGB").tobytes())
    buf = io.BytesIO()
    clean.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def scale_to(img: Image.Image, side: int) -> Image.Image:
    """Scale (up or down) so the longer side is `side`: every picture of a study is shown at
    the resolution a participant needs, whatever the size of its source file."""
    w, h = img.size
    if max(w, h) == side:
        return img
    scale = side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def fit(img: Image.Image, max_side: int) -> Image.Image:
    """Scale down (never up) so the longer side is at most max_side."""
    w, h = img.size
    scale = min(1.0, max_side / max(w, h))
    if scale >= 1.0:
        return img
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def hstack(images: Sequence[Image.Image], gap: int = GAP) -> Image.Image:
    """Images next to each other, top-aligned, on a white background."""
    width = sum(i.width for i in images) + gap * (len(images) - 1)
    height = max(i.height for i in images)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    x = 0
    for img in images:
        canvas.paste(img, (x, 0))
        x += img.width + gap
    return canvas


def vstack(images: Sequence[Image.Image], gap: int = GAP) -> Image.Image:
    width = max(i.width for i in images)
    height = sum(i.height for i in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    y = 0
    for img in images:
        canvas.paste(img, (0, y))
        y += img.height + gap
    return canvas


def saliency_media(image_path: Path, overlay_path: Path, layout: str, max_side: int) -> list[bytes]:
    """The image and the same image with the overlay: one PNG side by side, or two PNGs."""
    image = load_rgb(image_path)
    overlay = load_rgb(overlay_path)
    if overlay.size != image.size:  # an imported method may give another size
        overlay = overlay.resize(image.size, Image.Resampling.BICUBIC)
    image, overlay = scale_to(image, max_side), scale_to(overlay, max_side)
    if layout == "side_by_side":
        return [png_bytes(hstack([image, overlay]))]
    return [png_bytes(image), png_bytes(overlay)]


def single_media(image_path: Path, max_side: int) -> bytes:
    return png_bytes(scale_to(load_rgb(image_path), max_side))


def patch_tile(image: Image.Image, box: Sequence[float], size: int, context: float = 0.6) -> Image.Image:
    """A square crop around `box` with some context, scaled to size x size, box drawn in yellow."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * context)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = cx - side / 2, cy - side / 2
    left = min(max(0.0, left), max(0.0, image.width - side))
    top = min(max(0.0, top), max(0.0, image.height - side))
    right, bottom = min(image.width, left + side), min(image.height, top + side)
    crop = image.crop((round(left), round(top), round(right), round(bottom)))
    sx, sy = size / max(1, crop.width), size / max(1, crop.height)
    tile = crop.resize((size, size), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(tile)
    width = max(2, size // 40)
    rect = [(x0 - round(left)) * sx, (y0 - round(top)) * sy, (x1 - round(left)) * sx - 1, (y1 - round(top)) * sy - 1]
    rect = [min(max(0, v), size - 1) for v in rect]
    draw.rectangle(rect, outline=YELLOW, width=width)
    return tile


def patch_set_media(rows: Sequence[Sequence[tuple[Path, Sequence[float]]]], size: int) -> bytes:
    """One image of patch rows (one row per prototype), each patch with its yellow box."""
    cache: dict[Path, Image.Image] = {}
    row_images = []
    for row in rows:
        tiles = []
        for path, box in row:
            if path not in cache:
                cache[path] = load_rgb(path)
            tiles.append(patch_tile(cache[path], box, size))
        row_images.append(hstack(tiles))
    return png_bytes(vstack(row_images))


# -- attention checks: their own pictures, never a copy of a real question --------------

CHECK_BACKGROUNDS = ((236, 240, 246), (246, 240, 230), (234, 244, 234), (244, 234, 242), (240, 240, 240))
CHECK_INK = (40, 40, 40)


def check_card(lines: Sequence[str], size: tuple[int, int], background=CHECK_BACKGROUNDS[0]) -> Image.Image:
    """A plain card with centred text: the picture of an attention check. It shows no
    photograph, so a check never repeats a stimulus and its answer is obvious."""
    width, height = size
    card = Image.new("RGB", (width, height), tuple(background))
    draw = ImageDraw.Draw(card)
    font = ImageFont.load_default(size=max(12, min(width, height) // 12))
    wrapped: list[str] = []
    for line in lines:
        words, current = line.split(), ""
        for word in words:
            trial = f"{current} {word}".strip()
            if current and draw.textlength(trial, font=font) > width * 0.85:
                wrapped.append(current)
                current = word
            else:
                current = trial
        wrapped.append(current)
    step = round(font.size * 1.4)
    y = (height - step * len(wrapped)) // 2
    for line in wrapped:
        draw.text((width / 2, y + step / 2), line, fill=CHECK_INK, font=font, anchor="mm")
        y += step
    return card


def check_media(size: tuple[int, int], one_picture: bool, label: str, number: int) -> list[bytes]:
    """The pictures of attention check `number`: as many as the study's questions show
    (`one_picture`: two cards side by side in one picture), each of `size` (the question
    kind's `check_size`), telling which answer to give (the question text says it too)."""
    background = CHECK_BACKGROUNDS[number % len(CHECK_BACKGROUNDS)]
    first = ["Control question", "to check attention"]
    second = ["Please answer", f"\u201c{label}\u201d"]
    if one_picture:
        return [png_bytes(hstack([check_card(first, size, background), check_card(second, size, background)]))]
    return [png_bytes(check_card(first, size, background)), png_bytes(check_card(second, size, background))]
