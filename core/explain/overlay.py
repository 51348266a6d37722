"""How an activation map is shown: upsampling, colouring, blending and boxes.

Pure numpy + OpenCV (no torch), so the atlas importer and benchmarks can use it. The
conventions follow SPEC §3: bicubic upsampling of the feature-grid map, min-max
normalisation, the JET colormap (OpenCV returns BGR, we return RGB), a blend of
0.5·image + 0.3·heatmap over the *un-normalised* image, and the high-activation box =
the smallest box holding every pixel at or above the 95th percentile of the upsampled map.
Boxes are `(x0, y0, x1, y1)` integer pixels with x1/y1 exclusive (FORMATS.md).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

YELLOW = (255, 255, 0)  # RGB
IMAGE_WEIGHT = 0.5
HEAT_WEIGHT = 0.3
BOX_PERCENTILE = 95.0

Box = tuple[int, int, int, int]


def upsample(act_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic upsampling of a (h, w) map to `size` = (height, width), float32."""
    act_map = np.asarray(act_map, dtype=np.float32)
    if act_map.ndim != 2:
        raise ValueError(f"activation map must be 2-D, got shape {act_map.shape}")
    height, width = int(size[0]), int(size[1])
    if act_map.shape == (height, width):
        return act_map.copy()
    return cv2.resize(act_map, (width, height), interpolation=cv2.INTER_CUBIC)


def normalise(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant map becomes all zeros (nothing stands out)."""
    values = np.asarray(values, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError("activation map contains NaN or infinite values")
    if high - low <= 1e-12:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def jet_rgb(normalised: np.ndarray) -> np.ndarray:
    """JET colouring of a [0, 1] map as uint8 RGB (OpenCV's colormap output is BGR)."""
    levels = np.clip(np.rint(normalised * 255.0), 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(levels, cv2.COLORMAP_JET)
    return bgr[..., ::-1]


def blend(image_rgb: np.ndarray, heat_rgb: np.ndarray,
          image_weight: float = IMAGE_WEIGHT, heat_weight: float = HEAT_WEIGHT) -> np.ndarray:
    """`image_weight·image + heat_weight·heat`, saturated to uint8."""
    image_rgb = _as_rgb_uint8(image_rgb)
    if heat_rgb.shape != image_rgb.shape:
        raise ValueError(f"heatmap shape {heat_rgb.shape} does not match image shape {image_rgb.shape}")
    return cv2.addWeighted(image_rgb, image_weight, np.ascontiguousarray(heat_rgb), heat_weight, 0.0)


def overlay(image_rgb: np.ndarray, act_map: np.ndarray,
            image_weight: float = IMAGE_WEIGHT, heat_weight: float = HEAT_WEIGHT) -> np.ndarray:
    """The standard overlay of a (feature-grid or full-size) map on an RGB uint8 image."""
    image_rgb = _as_rgb_uint8(image_rgb)
    up = upsample(act_map, image_rgb.shape[:2])
    return blend(image_rgb, jet_rgb(normalise(up)), image_weight, heat_weight)


def high_activation_box(upsampled: np.ndarray, percentile: float = BOX_PERCENTILE) -> Box:
    """Smallest box holding all pixels >= the given percentile of the (upsampled) map.

    A constant map gives the whole image.
    """
    upsampled = np.asarray(upsampled, dtype=np.float32)
    threshold = np.percentile(upsampled, percentile)
    mask = upsampled >= threshold
    if threshold <= upsampled.min() and upsampled.max() > threshold:
        # more than (100 - percentile)% of the map ties at its minimum (e.g. a binary
        # map with a small hot spot): the literal rule would box the whole image, so box
        # what rises above the floor instead
        mask = upsampled > threshold
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def map_box(act_map: np.ndarray, size: tuple[int, int], percentile: float = BOX_PERCENTILE) -> Box:
    """High-activation box of a feature-grid map shown at `size` = (height, width)."""
    return high_activation_box(upsample(act_map, size), percentile)


def crop_region(crop_box: Sequence[float], image_size: tuple[int, int]) -> Box:
    """Integer pixel region of a (possibly fractional) crop box, clipped to the image.

    `image_size` is (height, width). The region is never empty.
    """
    height, width = int(image_size[0]), int(image_size[1])
    x0 = min(max(int(np.floor(crop_box[0] + 1e-6)), 0), width - 1)
    y0 = min(max(int(np.floor(crop_box[1] + 1e-6)), 0), height - 1)
    x1 = max(min(int(np.ceil(crop_box[2] - 1e-6)), width), x0 + 1)
    y1 = max(min(int(np.ceil(crop_box[3] - 1e-6)), height), y0 + 1)
    return x0, y0, x1, y1


FEATHER = 0.08   # width of the fade outside the crop, as a fraction of the crop's longer side


def map_on_original(act_map: np.ndarray, crop_box: Sequence[float],
                    image_size: tuple[int, int]) -> tuple[np.ndarray, Box]:
    """Place a map computed on a crop of the original image back into original pixels.

    The model sees the crop `crop_box` (original pixels) resized to a square; its map
    covers exactly that crop. Returns the min-max normalised map at the original image
    size and the 95th-percentile box in original pixels (from the crop's map alone).
    Inside the crop the map is exactly the upsampled one; outside it (the model saw
    nothing there) it fades from the crop's edge values to 0 over `FEATHER` of the crop's
    longer side (smoothstep), so the overlay shows no rectangle where the crop ends.
    """
    x0, y0, x1, y1 = crop_region(crop_box, image_size)
    height, width = int(image_size[0]), int(image_size[1])
    inside = normalise(upsample(act_map, (y1 - y0, x1 - x0)))
    rows = np.clip(np.arange(height), y0, y1 - 1)
    cols = np.clip(np.arange(width), x0, x1 - 1)
    extended = inside[(rows - y0)[:, None], (cols - x0)[None, :]]
    dy = np.abs(np.arange(height) - rows).astype(np.float32)[:, None]
    dx = np.abs(np.arange(width) - cols).astype(np.float32)[None, :]
    reach = max(2.0, FEATHER * max(x1 - x0, y1 - y0))
    t = np.clip(np.sqrt(dy * dy + dx * dx) / reach, 0.0, 1.0)
    full = (extended * (1.0 - t * t * (3.0 - 2.0 * t))).astype(np.float32)
    bx0, by0, bx1, by1 = high_activation_box(inside)
    return full, (bx0 + x0, by0 + y0, bx1 + x0, by1 + y0)


def overlay_on_original(image_rgb: np.ndarray, act_map: np.ndarray,
                        crop_box: Sequence[float]) -> tuple[np.ndarray, Box]:
    """Overlay on the original image of a map computed on its crop; also the box."""
    image_rgb = _as_rgb_uint8(image_rgb)
    full, box = map_on_original(act_map, crop_box, image_rgb.shape[:2])
    return blend(image_rgb, jet_rgb(full)), box


STIMULUS_SIDE = 448  # longer side of a participant's stimulus (px), the studies' default display size


def stimulus_shape(region_hw: tuple[int, int], side: int = STIMULUS_SIDE) -> tuple[int, int]:
    """(height, width) of a region scaled so its longer side is `side`, aspect kept."""
    height, width = int(region_hw[0]), int(region_hw[1])
    scale = side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def render_stimulus(image_rgb: np.ndarray, act_map: np.ndarray, crop_box: Sequence[float],
                    side: int = STIMULUS_SIDE) -> tuple[np.ndarray, np.ndarray, Box]:
    """What a participant sees for one map: (picture, overlay, region).

    `region` = the crop the model saw (e.g. the bird's box), in original pixels. The picture
    is the ORIGINAL image's pixels of that region resized so the longer side is `side`
    (bicubic up, area down), never the model's small input; the overlay is the SPEC §3
    blend on that picture of the map upsampled bicubically straight to the picture's size
    and min-max normalised. Only the region is shown, so there is no crop border.
    """
    image_rgb = _as_rgb_uint8(image_rgb)
    x0, y0, x1, y1 = crop_region(crop_box, image_rgb.shape[:2])
    region = image_rgb[y0:y1, x0:x1]
    height, width = stimulus_shape(region.shape[:2], side)
    shrink = height < region.shape[0]
    picture = cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    heat = jet_rgb(normalise(upsample(act_map, (height, width))))
    return picture, blend(picture, heat), (x0, y0, x1, y1)


def draw_box(image_rgb: np.ndarray, box: Sequence[float], color=YELLOW,
             thickness: int | None = None) -> np.ndarray:
    """A copy of the image with one rectangle (default yellow, width scaled to the image)."""
    return draw_boxes(image_rgb, [box], color, thickness)


def draw_boxes(image_rgb: np.ndarray, boxes: Iterable[Sequence[float]], color=YELLOW,
               thickness: int | None = None) -> np.ndarray:
    """A copy of the image with rectangles drawn inside each box (x1/y1 exclusive)."""
    out = _as_rgb_uint8(image_rgb).copy()
    if thickness is None:
        thickness = max(1, round(min(out.shape[:2]) / 112))
    for box in boxes:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), tuple(int(c) for c in color),
                      thickness)
    return out


def crop(image_rgb: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The pixels of a box (clipped to the image), e.g. a prototype's source patch."""
    height, width = image_rgb.shape[:2]
    x0, y0, x1, y1 = crop_region(box, (height, width))
    return image_rgb[y0:y1, x0:x1]


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return np.ascontiguousarray(image)
