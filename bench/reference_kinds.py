"""Reference masks that look like what segmentation gives on real photos, for the refine
benchmark (issue 20: "benchmark on references that look like real CNN masks, not only clean
ones"). Each kind is a function ``(mask, rng) -> mask`` of bool HxW arrays at the work size
(300 px wide); sizes in pixels of that size.

- ``clean``: the exact silhouette;
- ``noise3``, ``noise5``: :func:`geometry.masks.realistic_noise` at 3 and 5 px (5 px gives IoU
  ceilings near 0.9, like a real photo's);
- ``eroded``, ``dilated``: the outline moved in or out by 2 px (a CNN's bias at the edge);
- ``soft``: blurred (sigma 2.5 px) and thresholded at 0.6, a CNN's soft edge (thin parts and
  corners lost);
- ``bite``: a disc of 18-30 % of the object's height taken out at its outline (an occluder);
- ``touching``: a second object (a box of 40-70 % of the object's size) touching its side,
  merged into the mask, as a class mask merges two cars that touch.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from geometry.masks import realistic_noise


def _disc(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    ys, xs = np.mgrid[-r : r + 1, -r : r + 1]
    return ys**2 + xs**2 <= radius**2


def eroded(mask: np.ndarray, rng: np.random.Generator, px: float = 2.0) -> np.ndarray:
    out = ndimage.binary_erosion(mask, structure=_disc(px))
    return out if out.any() else mask


def dilated(mask: np.ndarray, rng: np.random.Generator, px: float = 2.0) -> np.ndarray:
    return ndimage.binary_dilation(mask, structure=_disc(px))


def soft(mask: np.ndarray, rng: np.random.Generator, sigma: float = 2.5, threshold: float = 0.6) -> np.ndarray:
    out = ndimage.gaussian_filter(mask.astype(float), sigma) > threshold
    return out if out.any() else mask


def bite(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows = np.flatnonzero(mask.any(axis=1))
    height = rows[-1] - rows[0] + 1
    edge = np.argwhere(mask & ~ndimage.binary_erosion(mask))
    cy, cx = edge[rng.integers(len(edge))]
    radius = rng.uniform(0.18, 0.30) * height
    ys, xs = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
    out = mask & ((ys - cy) ** 2 + (xs - cx) ** 2 > radius**2)
    return out if out.any() else mask


def touching(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    box_h, box_w = (int(rng.uniform(0.4, 0.7) * s) for s in (height, width))
    bottom = rows[-1] - int(rng.uniform(0.0, 0.2) * height)  # standing on about the same ground
    if rng.random() < 0.5:  # left or right, overlapping the object's side by a few pixels
        left = cols[0] - box_w + 3
    else:
        left = cols[-1] - 3
    out = mask.copy()
    out[max(0, bottom - box_h) : max(0, bottom), max(0, left) : max(0, left + box_w)] = True
    return out


KINDS = {
    "clean": lambda mask, rng: mask,
    "noise3": lambda mask, rng: realistic_noise(mask, rng, amplitude_px=3.0),
    "noise5": lambda mask, rng: realistic_noise(mask, rng, amplitude_px=5.0),
    "eroded": eroded,
    "dilated": dilated,
    "soft": soft,
    "bite": bite,
    "touching": touching,
}
#: The kinds that stand for real photos' references (issue 20's "real-like": noise, soft edges, occlusion).
REAL_LIKE = ("noise3", "noise5", "eroded", "dilated", "soft", "bite", "touching")
