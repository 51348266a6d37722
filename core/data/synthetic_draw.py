"""Drawing one synthetic bird (and its background) with OpenCV.

The bird is built in a canonical frame (facing right, body centre at the origin, y down,
body about one unit long), then flipped, rotated, scaled and moved into the picture by
one affine map; part locations go through the same map, so they are exact. A bird is
seen from its side: the far eye, wing and leg are hidden (visible flag 0), as in CUB.
Every region is painted through a boolean mask, which also gives the tight bounding box.

Pixel convention: OpenCV draws pixel centres at integer coordinates, FORMATS.md puts them
at i + 0.5, so part locations are written as OpenCV coordinates + 0.5.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from core.data.synthetic_profiles import COLOURS

SHIFT = 4  # sub-pixel bits for cv2 polygon drawing
# The head is drawn for a radius of 0.2 and scaled by HEAD_SCALE (1.3: at the model's 8 x 8
# feature grid a head of radius 0.2 was under two cells wide, and its six part locations
# sat closer together than a cell, so the part named for a head cell was a coin toss).
HEAD_SCALE = 1.3
HEAD = np.array([0.50, -0.33])
HEAD_R = 0.20 * HEAD_SCALE


def on_head(dx: float, dy: float) -> np.ndarray:
    """A point of the head, given for a head of radius 0.2 (scaled with the head)."""
    return HEAD + HEAD_SCALE * np.array([dx, dy])


BODY = ((0.0, 0.0), 0.50, 0.30, -20.0)
TAIL_BASE = np.array([-0.38, 0.10])
TAIL_DIR = np.array([-1.0, 0.35]) / math.hypot(1.0, 0.35)
TAIL_LEN = 0.5
BEAK_BASE = on_head(0.17, 0.02)
BEAK_DIR = np.array([1.0, 0.12]) / math.hypot(1.0, 0.12)


def ellipse(center, a, b, angle_deg=0.0, n=48) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    pts = np.stack([a * np.cos(t), b * np.sin(t)], axis=1)
    r = math.radians(angle_deg)
    rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    return pts @ rot.T + np.asarray(center, dtype=np.float64)


def along(base, direction, uv) -> np.ndarray:
    """Points given as (u along `direction`, v across it, v>0 to the right-hand/down side)."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(direction, dtype=np.float64)
    n = np.array([-d[1], d[0]])
    return base + uv[:, :1] * d + uv[:, 1:] * n


def beak_polygon(shape: str) -> tuple[np.ndarray, np.ndarray]:
    """Bill outline and the bill's part location (middle of its centre line)."""
    if shape == "curved_(up_or_down)":
        length = 0.34
        t = np.linspace(0.0, 1.0, 12)
        cu, cv = length * t, 0.16 * t ** 2
        w = 0.045 * (1.0 - t) + 0.006
        uv = np.concatenate([np.stack([cu, cv - w], 1), np.stack([cu, cv + w], 1)[::-1]])
        mid = (0.5 * length, 0.16 * 0.25)
    else:
        length, w = {"needle": (0.40, 0.03), "dagger": (0.30, 0.055), "all-purpose": (0.17, 0.05),
                     "cone": (0.13, 0.085), "hooked": (0.21, 0.06)}[shape]
        if shape == "hooked":
            uv = [(0, -w), (0.75 * length, -0.8 * w), (length, 0.0), (0.97 * length, 1.1 * w),
                  (0.86 * length, 0.35 * w), (0, w)]
        elif shape == "all-purpose":
            uv = [(0, -w), (length, -0.012), (length, 0.012), (0, w)]
        else:
            uv = [(0, -w), (length, 0.0), (0, w)]
        mid = (0.5 * length, 0.0)
    return along(BEAK_BASE, BEAK_DIR, uv), along(BEAK_BASE, BEAK_DIR, [mid])[0]


def tail_polygon(shape: str) -> np.ndarray:
    L = TAIL_LEN
    if shape == "squared_tail":
        uv = [(0, -0.08), (L, -0.12), (L, 0.12), (0, 0.08)]
    elif shape == "forked_tail":
        uv = [(0, -0.08), (L, -0.16), (0.6 * L, 0.0), (L, 0.16), (0, 0.08)]
    elif shape == "notched_tail":
        uv = [(0, -0.08), (L, -0.13), (0.87 * L, 0.0), (L, 0.13), (0, 0.08)]
    elif shape == "pointed_tail":
        uv = [(0, -0.08), (0.6 * L, -0.1), (1.15 * L, 0.0), (0.6 * L, 0.1), (0, 0.08)]
    else:  # rounded_tail
        t = np.linspace(-math.pi / 2, math.pi / 2, 15)
        arc = [(0.75 * L + 0.13 * math.cos(a), 0.13 * math.sin(a)) for a in t]
        uv = [(0, -0.08)] + arc + [(0, 0.08)]
    return along(TAIL_BASE, TAIL_DIR, uv)


WINGS = {
    "pointed-wings": [(0.22, -0.1), (0.12, -0.17), (-0.05, -0.18), (-0.28, -0.12), (-0.5, 0.0), (-0.74, 0.12),
                      (-0.4, 0.09), (-0.12, 0.07), (0.1, 0.04), (0.2, -0.02)],
    "rounded-wings": [(0.22, -0.1), (0.12, -0.17), (-0.05, -0.18), (-0.28, -0.12), (-0.42, -0.05), (-0.5, 0.03),
                      (-0.45, 0.09), (-0.3, 0.1), (-0.12, 0.07), (0.1, 0.04), (0.2, -0.02)],
}

# Canonical part locations of the near side (the far side's are hidden).
PART_XY = {
    "back": (0.02, -0.27), "belly": (-0.05, 0.2), "breast": (0.36, 0.06),
    "crown": tuple(on_head(0.04, -0.12)), "forehead": tuple(on_head(0.16, -0.09)),
    "nape": tuple(on_head(-0.12, 0.05)), "eye": tuple(on_head(0.07, -0.02)),
    "throat": tuple(on_head(0.1, 0.13)), "wing": (-0.04, -0.06),
    "tail": tuple(TAIL_BASE + 0.6 * TAIL_LEN * TAIL_DIR), "leg": (0.0675, 0.43),
}


# Region codes of `Drawing.regions`: which painted area each pixel belongs to.
REGIONS = ["background", "leg", "tail", "back", "belly", "breast", "nape", "crown", "throat", "eye", "wing", "beak"]
# The region each visible part location must lie on (tests check this).
PART_REGION = {"back": "back", "beak": "beak", "belly": "belly", "breast": "breast", "crown": "crown",
               "forehead": "crown", "nape": "nape", "throat": "throat", "tail": "tail", "left eye": "eye",
               "right eye": "eye", "left wing": "wing", "right wing": "wing", "left leg": "leg", "right leg": "leg"}


class Drawing(NamedTuple):
    image: np.ndarray                                 # uint8 [H, W, 3] RGB
    parts: dict[str, tuple[float, float, int]]        # name -> (x, y, visible), FORMATS.md pixels
    box: tuple[float, float, float, float]            # tight box of the bird, x1/y1 exclusive
    pose: dict                                        # facing, tilt (degrees), scale (px per unit)
    regions: np.ndarray                               # uint8 [H, W] index into REGIONS


def contrast(colour: str) -> tuple[int, int, int]:
    """Black or white, whichever stands out on `colour` (for stripes, spots, brows)."""
    r, g, b = COLOURS[colour]
    return COLOURS["black"] if 0.299 * r + 0.587 * g + 0.114 * b > 120 else COLOURS["white"]


class Painter:
    """Paints canonical shapes into an RGB image through one affine map."""

    def __init__(self, img: np.ndarray, affine: np.ndarray, scale: float, rng: np.random.Generator):
        self.img, self.affine, self.scale, self.rng = img, affine, scale, rng
        self.h, self.w = img.shape[:2]
        self.bird = np.zeros((self.h, self.w), dtype=bool)
        self.regions = np.zeros((self.h, self.w), dtype=np.uint8)  # REGIONS code of each pixel

    def px(self, pts) -> np.ndarray:
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        return p @ self.affine[:, :2].T + self.affine[:, 2]

    def _fixed(self, pts) -> np.ndarray:
        return np.round(self.px(pts) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)

    def mask(self, pts) -> np.ndarray:
        m = np.zeros((self.h, self.w), dtype=np.uint8)
        cv2.fillPoly(m, [self._fixed(pts)], 1, lineType=cv2.LINE_8, shift=SHIFT)
        return m.astype(bool)

    def line_mask(self, a, b, width: float, min_px: int = 1) -> np.ndarray:
        """A thick segment; `min_px=2` where a part location sits on the line (a 1-px line
        rasterised off its centre line would miss it)."""
        m = np.zeros((self.h, self.w), dtype=np.uint8)
        t = max(min_px, int(round(width * self.scale)))
        p = self._fixed([a, b]).reshape(2, 2)
        cv2.line(m, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), 1, t, cv2.LINE_8, SHIFT)
        return m.astype(bool)

    def jitter(self, rgb) -> np.ndarray:
        return np.clip(np.asarray(rgb, dtype=np.float64) + self.rng.normal(0.0, 9.0, 3), 0, 255).astype(np.uint8)

    def paint(self, m: np.ndarray, rgb, clip: np.ndarray | None = None, region: str | None = None) -> np.ndarray:
        """Paint mask `m` (within `clip`); `region` relabels the pixels (patterns keep theirs)."""
        if clip is not None:
            m = m & clip
        self.img[m] = self.jitter(rgb)
        self.bird |= m
        if region is not None:
            self.regions[m] = REGIONS.index(region)
        return m

    def pattern(self, kind: str, region: np.ndarray, rgb, strokes, dots) -> None:
        """Stripes (canonical segments) or spots (canonical centres) inside `region`."""
        if kind == "striped":
            for a, b in strokes:
                self.paint(self.line_mask(a, b, 0.04), rgb, region)
        elif kind == "spotted":
            for c in dots:
                self.paint(self.mask(ellipse(c, 0.03, 0.03, n=12)), rgb, region)


def background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A gradient with low-frequency texture and random clutter (branches, leaves, blobs).

    Colours are random for every image, so the background says nothing about the class.
    """
    top, bottom = rng.uniform(40, 230, 3), rng.uniform(40, 230, 3)
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    img = (1 - t) * top + t * bottom + np.zeros((h, w, 3))
    tex = cv2.resize(rng.normal(0.0, 18.0, (5, 5, 3)), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img + tex, 0, 255).astype(np.uint8)
    s = min(h, w)
    for _ in range(int(rng.integers(3, 9))):
        kind = rng.integers(3)
        colour = tuple(int(v) for v in rng.uniform(20, 235, 3))
        if kind == 0:  # branch
            p0 = rng.uniform(0, 1, 2) * (w, h)
            ang = rng.uniform(0, math.pi)
            p1 = p0 + rng.uniform(0.3, 0.9) * s * np.array([math.cos(ang), math.sin(ang)])
            brown = tuple(int(v) for v in np.clip(np.array([95, 65, 40]) + rng.normal(0, 25, 3), 0, 255))
            cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), brown,
                     max(1, int(s * rng.uniform(0.01, 0.04))), cv2.LINE_AA)
        elif kind == 1:  # leaf
            c = tuple(int(v) for v in rng.uniform(0, 1, 2) * (w, h))
            axes = (max(1, int(s * rng.uniform(0.03, 0.09))), max(1, int(s * rng.uniform(0.015, 0.04))))
            green = tuple(int(v) for v in np.clip(np.array([60, 140, 50]) + rng.normal(0, 35, 3), 0, 255))
            cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, green, -1, cv2.LINE_AA)
        else:  # blob
            c = rng.uniform(0, 1, 2) * (w, h)
            r = s * rng.uniform(0.03, 0.1)
            ang = np.sort(rng.uniform(0, 2 * math.pi, 7))
            pts = c + np.stack([np.cos(ang), np.sin(ang)], 1) * r * rng.uniform(0.5, 1.0, (7, 1))
            cv2.fillPoly(img, [pts.astype(np.int32)], colour, cv2.LINE_AA)
    return img


def draw_bird(values: dict[str, str], rng: np.random.Generator, size: int):
    """Draw one bird with the given attribute values.

    Returns a `Drawing`; the image's longer side is `size`, the other 75-100% of it.
    """
    side = int(round(size * rng.uniform(0.75, 1.0)))
    w, h = (size, side) if rng.random() < 0.7 else (side, size)
    img = background(h, w, rng)

    facing = "left" if rng.random() < 0.5 else "right"
    tilt = float(rng.uniform(-20.0, 20.0))
    beak, beak_mid = beak_polygon(values["has_bill_shape"])
    tail = tail_polygon(values["has_tail_shape"])
    outline = np.concatenate([beak, tail, ellipse(*BODY), ellipse(HEAD, HEAD_R, HEAD_R),
                              np.array(WINGS[values["has_wing_shape"]]), [[0.22, 0.62], [-0.08, 0.62]]])
    f = -1.0 if facing == "left" else 1.0
    r = math.radians(tilt)
    lin = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]]) @ np.diag([f, 1.0])
    ext = outline @ lin.T
    span = ext.max(0) - ext.min(0)
    scale = float(rng.uniform(0.45, 0.85)) * min(w, h) / 2.1
    scale = min(scale, 0.94 * w / span[0], 0.94 * h / span[1])
    lo, hi = ext.min(0) * scale, ext.max(0) * scale
    margin = 0.02 * min(w, h)
    cx = rng.uniform(margin - lo[0], max(margin - lo[0], w - margin - hi[0]))
    cy = rng.uniform(margin - lo[1], max(margin - lo[1], h - margin - hi[1]))
    affine = np.concatenate([lin * scale, [[cx], [cy]]], axis=1)
    p = Painter(img, affine, scale, rng)
    v = values

    if rng.random() < 0.7:  # a perch under the feet, behind the legs
        foot = p.px([(0.08, 0.6)])[0]
        ang = math.radians(tilt * 0.3 + rng.uniform(-15, 15))
        d = np.array([math.cos(ang), math.sin(ang)]) * w
        brown = tuple(int(c) for c in np.clip(np.array([90, 60, 35]) + rng.normal(0, 20, 3), 0, 255))
        cv2.line(img, tuple(int(c) for c in foot - d), tuple(int(c) for c in foot + d), brown,
                 max(2, int(0.05 * scale)), cv2.LINE_AA)

    leg_rgb = COLOURS[v["has_leg_color"]]
    for a, b in [((0.05, 0.22), (0.08, 0.58)), ((0.08, 0.58), (0.21, 0.61)), ((0.08, 0.58), (-0.05, 0.61))]:
        p.paint(p.line_mask(a, b, 0.045, min_px=2), leg_rgb, region="leg")

    tail_m = p.paint(p.mask(tail), COLOURS[v["has_upper_tail_color"]], region="tail")
    L = TAIL_LEN
    p.pattern(v["has_tail_pattern"], tail_m, contrast(v["has_upper_tail_color"]),
              [tuple(along(TAIL_BASE, TAIL_DIR, [(u * L, -0.25), (u * L, 0.25)])) for u in (0.4, 0.6, 0.8)],
              along(TAIL_BASE, TAIL_DIR, [(0.45 * L, -0.05), (0.6 * L, 0.06), (0.78 * L, -0.04), (0.9 * L, 0.07)]))

    back = COLOURS[v["has_back_color"]]
    body_m = p.paint(p.mask(ellipse(*BODY)), back, region="back")
    p.paint(p.mask(ellipse((-0.05, 0.2), 0.42, 0.17, -20.0)), COLOURS[v["has_belly_color"]], body_m, "belly")
    breast_m = p.paint(p.mask(ellipse((0.3, 0.02), 0.2, 0.22, -20.0)), COLOURS[v["has_breast_color"]], body_m, "breast")
    p.pattern(v["has_breast_pattern"], breast_m, contrast(v["has_breast_color"]),
              [((x, -0.1), (x + 0.02, 0.2)) for x in (0.22, 0.32, 0.42)],
              [(0.24, -0.02), (0.36, -0.06), (0.3, 0.08), (0.42, 0.04), (0.22, 0.14), (0.36, 0.16)])

    head_m = p.paint(p.mask(ellipse(HEAD, HEAD_R, HEAD_R)), back, region="nape")
    p.paint(p.mask(ellipse(on_head(0.03, -0.13), HEAD_SCALE * 0.21, HEAD_SCALE * 0.12)), COLOURS[v["has_crown_color"]], head_m, "crown")
    p.paint(p.mask(ellipse(on_head(0.1, 0.12), HEAD_SCALE * 0.14, HEAD_SCALE * 0.09)), COLOURS[v["has_throat_color"]], head_m | body_m, "throat")
    eye = on_head(0.07, -0.02)
    hp = v["has_head_pattern"]
    if hp == "masked":
        p.paint(p.line_mask(on_head(-0.05, 0.0), on_head(0.2, -0.03), HEAD_SCALE * 0.08), COLOURS["black"], head_m)
    elif hp == "eyebrow":
        p.paint(p.line_mask(on_head(0.0, -0.075), on_head(0.11, -0.08), HEAD_SCALE * 0.03), contrast(v["has_crown_color"]), head_m)
    elif hp == "eyering":
        p.paint(p.mask(ellipse(eye, HEAD_SCALE * 0.068, HEAD_SCALE * 0.068, n=20)), COLOURS["white"], head_m)
    p.paint(p.mask(ellipse(eye, HEAD_SCALE * 0.045, HEAD_SCALE * 0.045, n=16)), COLOURS[v["has_eye_color"]], region="eye")
    p.paint(p.mask(ellipse(eye, HEAD_SCALE * 0.022, HEAD_SCALE * 0.022, n=12)), COLOURS["black"])

    wing_m = p.paint(p.mask(np.array(WINGS[v["has_wing_shape"]])), COLOURS[v["has_wing_color"]], region="wing")
    p.pattern(v["has_wing_pattern"], wing_m, contrast(v["has_wing_color"]),
              [((x, -0.25), (x - 0.08, 0.2)) for x in (0.15, -0.05, -0.25)],
              [(0.18, -0.06), (0.02, 0.0), (-0.12, -0.08), (-0.2, 0.05), (0.05, -0.12), (-0.32, -0.02)])
    p.paint(p.mask(beak), COLOURS[v["has_bill_color"]], region="beak")

    near, far = ("left", "right") if facing == "left" else ("right", "left")
    canon = dict(PART_XY, beak=tuple(beak_mid))
    parts: dict[str, tuple[float, float, int]] = {}
    for name in ["back", "beak", "belly", "breast", "crown", "forehead", "nape", "tail", "throat"]:
        x, y = p.px([canon[name]])[0] + 0.5
        parts[name] = (round(float(x), 1), round(float(y), 1), 1)
    for kind, key in (("eye", "eye"), ("wing", "wing"), ("leg", "leg")):
        x, y = p.px([canon[key]])[0] + 0.5
        parts[f"{near} {kind}"] = (round(float(x), 1), round(float(y), 1), 1)
        parts[f"{far} {kind}"] = (0.0, 0.0, 0)

    ys, xs = np.nonzero(p.bird)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    img = np.clip(img.astype(np.int16) + rng.normal(0.0, 3.0, img.shape).astype(np.int16), 0, 255).astype(np.uint8)
    return Drawing(img, parts, box, {"facing": facing, "tilt": round(tilt, 3), "scale": round(scale, 3)}, p.regions)
