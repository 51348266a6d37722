"""Where a prototype activates, in model-input pixels (torch, batched; docs/METRICS.md).

Huang et al. take, per image and prototype, the activation map upsampled to the input
size with bicubic interpolation (OpenCV INTER_CUBIC there, `F.interpolate(mode="bicubic")`
here: the same kernel, a = -0.75, half-pixel centres, replicated border), its first
maximum in row-major order, and the square of half-side `half` around it clipped to the
image; a part "is in" the region when its pixel lies in it (bounds inclusive, as their
`in_bbox`). PIP-Net takes the feature cell of the maximum and its image patch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(B, K, h, w) -> (B, K, size, size), bicubic, float32."""
    b, k, h, w = maps.shape
    flat = maps.reshape(b * k, 1, h, w).float()
    up = F.interpolate(flat, size=(size, size), mode="bicubic", align_corners=False)
    return up.reshape(b, k, size, size)


def peak_regions(upsampled: torch.Tensor, half: int) -> torch.Tensor:
    """(B, K, S, S) -> (B, K, 4) int64 [row0, row1, col0, col1] (inclusive bounds).

    The peak is the first maximum in row-major order; the region is
    [max(0, r - half), min(S, r + half)] x [max(0, c - half), min(S, c + half)].
    """
    b, k, s, _ = upsampled.shape
    flat = upsampled.reshape(b, k, s * s)
    idx = flat.argmax(dim=2)     # first maximal index
    r, c = idx // s, idx % s
    return torch.stack([(r - half).clamp_min(0), (r + half).clamp_max(s),
                        (c - half).clamp_min(0), (c + half).clamp_max(s)], dim=2)


def parts_in_regions(regions: torch.Tensor, part_rc: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """(B, K, 4) regions, (B, P, 2) part pixels [row, col] (int), (B, P) bool -> (B, K, P) bool."""
    rows, cols = part_rc[:, None, :, 0], part_rc[:, None, :, 1]
    r0, r1, c0, c1 = (regions[..., i:i + 1] for i in range(4))
    inside = (rows >= r0) & (rows <= r1) & (cols >= c0) & (cols <= c1)
    return inside & visible[:, None, :]


def pack_bits(hits: torch.Tensor) -> torch.Tensor:
    """(..., P) bool -> (...,) int64 bit mask (P <= 62): one code per part-hit vector."""
    weights = (2 ** torch.arange(hits.shape[-1], device=hits.device, dtype=torch.int64))
    return (hits.to(torch.int64) * weights).sum(dim=-1)


def box_share(upsampled: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Energy share inside the object box: (B, K, S, S) maps, (B, 1, S, S) bool -> (B, K).

    Each map is min-max normalised to [0, 1] (as the overlays are, SPEC section 3) and the
    share is sum inside the box / sum over the image (Score-CAM's energy-based pointing
    game). A constant map has no share: NaN.
    """
    lo = upsampled.amin(dim=(2, 3), keepdim=True)
    hi = upsampled.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    norm = (upsampled - lo) / torch.where(span > 0, span, torch.ones_like(span))
    total = norm.sum(dim=(2, 3))
    share = (norm * inside).sum(dim=(2, 3)) / torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, share, torch.full_like(share, float("nan")))


def pipnet_patch(row: int, col: int, grid: tuple[int, int], size: int, patch: int, skip: int
                 ) -> tuple[int, int, int, int]:
    """PIP-Net's image patch of feature cell (row, col): (h_min, h_max, w_min, w_max) in model pixels.

    h_min = row * skip, h_max = min(size, h_min + patch); the last row/column of the grid
    reaches the image border, and a patch touching the border is moved to keep `patch` px.
    """
    h_min, h_max = row * skip, min(size, row * skip + patch)
    w_min, w_max = col * skip, min(size, col * skip + patch)
    if row == grid[0] - 1:
        h_max = size
    if col == grid[1] - 1:
        w_max = size
    if h_max == size:
        h_min = size - patch
    if w_max == size:
        w_min = size - patch
    return h_min, h_max, w_min, w_max
