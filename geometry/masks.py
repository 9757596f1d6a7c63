"""Binary masks: on disk, binarised, resized to the work size, outlined, and with the noise of a
real segmentation reference.

finepose's one rule for each: :func:`binarize` (an image -> a mask), :func:`resize_mask` (any
size change), :func:`work_size` (the size refinement runs at), :func:`outline_thickness` (how
wide overlays and predictions draw an outline).
"""

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
    if image.ndim not in (2, 3):
        raise MaskError(f"{path}: a mask must be a 2-D image, got shape {image.shape}")
    mask = binarize(image)
    if not mask.any():
        raise MaskError(f"{path}: mask is empty (no pixel over half brightness)")
    return mask


def binarize(image: np.ndarray) -> np.ndarray:
    """A mask image as a boolean (H, W) mask: a pixel is inside when it is over half
    brightness in any colour channel (alpha ignored): over 0.5 for floats, over half the
    type's range for integers (127 for 8 bits), except that an integer image holding only
    0 and 1 (label images) counts 1 as inside."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3] if image.shape[-1] >= 3 else image[..., :1]
    if image.dtype == bool:
        inside = image
    elif np.issubdtype(image.dtype, np.floating):
        inside = image > 0.5
    else:
        top = int(image.max()) if image.size else 0
        inside = image > (0 if top <= 1 else np.iinfo(image.dtype).max // 2)
    return inside.any(axis=-1) if inside.ndim == 3 else inside


def work_size(width: int, height: int, work_width: int) -> tuple[int, int]:
    """(width, height) in px that refinement runs at for a ``width`` x ``height`` photo:
    ``work_width`` px wide (``FINEPOSE_WORK_WIDTH``, 300 as the release), never wider than
    the photo, the aspect kept."""
    shown = min(int(work_width), int(width))
    return shown, max(1, round(height * shown / width))


def outline_thickness(width: int, height: int, minimum: int = 1) -> int:
    """How many px wide an outline is drawn on a ``width`` x ``height`` image: about 2 screen
    pixels when the image fills ~800 px of screen (at least ``minimum``)."""
    return max(minimum, round(max(width, height) / 400))


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


def outline_ceiling(mask: np.ndarray, sigma_px: float = 2.0) -> float:
    """The IoU of ``mask`` with its own outline smoothed (Gaussian of ``sigma_px``, cut at
    0.5): about what a smooth silhouette can reach against a ragged reference, the bound
    :func:`.refine.refine_fast` measures its result against. 1.0 for an empty mask."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    smooth = ndimage.gaussian_filter(mask.astype(np.float32), sigma_px) > 0.5
    union = np.count_nonzero(smooth | mask)
    return np.count_nonzero(smooth & mask) / union if union else 1.0


def explained_iou(silhouette: np.ndarray, reference: np.ndarray, occluder_px: int = 3) -> float:
    """The IoU of ``silhouette`` with ``reference`` (bool masks of one size) with one kind of
    thick disagreement left out of the union: the regions that hold a disc of ``occluder_px``
    radius where the silhouette has what the reference lacks (an occluder's bite) or where
    the reference has what the silhouette lacks (a second object merged into it), whichever
    covers more. No pose of the model explains those. A pose in a wrong optimum disagrees
    in strips along the outline; where they are thick (a pose shifted or turned far) it
    disagrees both ways, and the smaller kind stays. A silhouette too small or too large all
    around disagrees one way only and is forgiven: the outline fit starts by matching areas
    (:func:`.outline_fit.align_moments`). 1.0 when both masks are empty.

    :func:`.refine.refine_fast` compares it with :func:`outline_ceiling`.
    """
    from scipy import ndimage

    silhouette, reference = np.asarray(silhouette, dtype=bool), np.asarray(reference, dtype=bool)
    union = np.count_nonzero(silhouette | reference)
    if not union:
        return 1.0
    r = int(occluder_px)
    ys, xs = np.mgrid[-r : r + 1, -r : r + 1]
    disc = xs**2 + ys**2 <= r**2
    bitten = np.count_nonzero(ndimage.binary_opening(silhouette & ~reference, structure=disc))
    merged = np.count_nonzero(ndimage.binary_opening(reference & ~silhouette, structure=disc))
    return np.count_nonzero(silhouette & reference) / max(1, union - max(bitten, merged))


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
