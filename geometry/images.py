"""Photos as arrays: every picture finepose draws on or segments is an ``(H, W, 3)`` uint8 RGB
array (:func:`as_rgb`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import GeometryError


class ImageError(GeometryError):
    """An image array or file that cannot be used as an RGB picture."""


def as_rgb(image) -> np.ndarray:
    """``image`` as a contiguous ``(H, W, 3)`` uint8 array: grey (``H x W``) is repeated, alpha
    dropped, booleans become 0/255, floats are taken as 0-1 (NaN as 0, clipped), wider
    integers are scaled from their type's range (16-bit 65535 -> 255)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 1:
        raise ImageError(f"image must be HxW, HxWx3 or HxWx4, got shape {img.shape}")
    img = img[:, :, :3]
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.floating):
        img = np.clip(np.nan_to_num(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        top = np.iinfo(img.dtype).max
        img = np.clip(img.astype(np.float64) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def read_rgb(path: str | Path) -> np.ndarray:
    """The image file at ``path`` as :func:`as_rgb` gives it (any mode PIL reads, converted to RGB)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            return as_rgb(np.asarray(image.convert("RGB")))
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"{path}: cannot read image ({exc})") from None
