"""Binary masks: on disk, resized, and with the noise of a real segmentation reference."""

from __future__ import annotations

from .errors import GeometryError

from pathlib import Path

import numpy as np


class MaskError(GeometryError):
    """A mask file that is missing, unreadable or empty."""


def read_mask(path: str | Path) -> np.ndarray:
    """A boolean (H, W) mask from an image file: nonzero (any channel, alpha ignored) is inside."""
    from skimage.io import imread

    path = Path(path)
    if not path.is_file():
        raise MaskError(f"mask file not found: {path}")
    try:
        image = imread(path)
    except Exception as exc:  # skimage/PIL raise many types for a broken file
        raise MaskError(f"{path}: cannot read mask image ({exc})") from None
    if image.ndim == 3:
        image = image[..., :3].max(axis=-1) if image.shape[-1] >= 3 else image[..., 0]
    if image.ndim != 2:
        raise MaskError(f"{path}: a mask must be a 2-D image, got shape {image.shape}")
    mask = image > 0
    if not mask.any():
        raise MaskError(f"{path}: mask is empty (no nonzero pixel)")
    return mask


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a boolean mask as an 8-bit PNG (0 / 255)."""
    from skimage.io import imsave

    imsave(Path(path), (np.asarray(mask, dtype=bool) * 255).astype(np.uint8), check_contrast=False)


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """``mask`` at ``width`` x ``height``: a pixel is in when at least half of its area was
    (exact area fractions, shrinking or growing). Returned as is when already that size.

    The area of the mask below and left of a point, ``A(x, y)``, is bilinear between pixel
    corners, so it is sampled exactly at the new pixels' corners by linear interpolation of
    cumulative sums (one along each axis), and a new pixel's share is a difference of four."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == (height, width):
        return mask
    h, w = mask.shape
    # Per old row, the area left of each new column corner (cumulative sums end at pixel
    # right edges: ``cum[:, k - 1]`` is the area left of corner k).
    rows = _at_corners(np.cumsum(mask, axis=1, dtype=np.int32), np.arange(width + 1) * (w / width))
    # Then up the old rows, at each new row corner.
    area = _at_corners(np.cumsum(rows, axis=0).T, np.arange(height + 1) * (h / height)).T
    inside = area[1:, 1:] - area[:-1, 1:] - area[1:, :-1] + area[:-1, :-1]
    return inside >= 0.5 * (w / width) * (h / height) - 1e-9


def _at_corners(cumulative: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """``A(x)`` for each row at fractional corner positions ``x`` in [0, n], where
    ``A(k) = cumulative[:, k - 1]`` (0 at k = 0) and ``A`` is linear between corners."""
    n = cumulative.shape[1]
    left = np.minimum(corners.astype(np.intp), n - 1)
    weight = corners - left
    at_left = np.where(left > 0, cumulative[:, np.maximum(left - 1, 0)], 0.0)
    return at_left * (1.0 - weight) + cumulative[:, left] * weight


def realistic_noise(mask: np.ndarray, rng: np.random.Generator, amplitude_px: float = 2.0) -> np.ndarray:
    """Corrupt ``mask`` like a CNN segmentation: a smoothly wobbling boundary (random smooth
    field of ``amplitude_px`` pixels added to the signed distance), a few blobs missed or added
    near the boundary, and rounded corners."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    signed = ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)
    field = ndimage.gaussian_filter(rng.normal(size=mask.shape), sigma=6.0)
    field *= amplitude_px / (np.abs(field).max() + 1e-12)
    noisy = signed + field > 0
    boundary = np.argwhere(np.abs(signed) < 3)
    if len(boundary):
        ys, xs = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
        for _ in range(4):
            cy, cx = boundary[rng.integers(len(boundary))]
            radius = rng.uniform(1.5, 3.5) * amplitude_px
            blob = (ys - cy) ** 2 + (xs - cx) ** 2 < radius**2
            noisy = noisy | blob if rng.random() < 0.5 else noisy & ~blob
    noisy = ndimage.binary_opening(noisy, iterations=1)
    return noisy if noisy.any() else mask


def border_pixels(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """The mask's pixels with a 4-neighbour outside it (pixels off the image count as
    outside): every 2x2 cell of pixel centres that the outline crosses holds one. With
    ``thickness`` n, those within n such steps of the outside (a band n pixels wide, as
    overlays draw outlines)."""
    mask = np.asarray(mask, dtype=bool)
    inner = mask
    for _ in range(max(1, int(thickness))):
        padded = np.pad(inner, 1)
        inner = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner
