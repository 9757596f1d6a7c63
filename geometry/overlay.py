"""Overlay pictures: an image with projected silhouette outlines drawn over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import as_rgb
from .masks import border_pixels, outline_thickness, resize_mask

#: RGB colours of outlines, in drawing order.
COLOURS = {"reference": (255, 64, 64), "initial": (255, 200, 0), "refined": (0, 230, 80)}


def draw_overlay(image: np.ndarray | None, masks: dict, size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB uint8 picture: ``image`` (grey background if None), each mask of ``masks`` as a
    coloured outline (``COLOURS`` by name) and the last one lightly filled."""
    if image is None:
        height, width = size[1], size[0]
        picture = np.full((height, width, 3), 40, dtype=np.uint8)
    else:
        picture = as_rgb(image)
    height, width = picture.shape[:2]
    canvas = picture.astype(np.float32)
    names = list(masks)
    thickness = outline_thickness(width, height)
    for name in names:
        mask = resize_mask(masks[name], width, height)
        colour = np.array(COLOURS.get(name, (0, 160, 255)), dtype=np.float32)
        if name == names[-1]:
            canvas[mask] = 0.75 * canvas[mask] + 0.25 * colour
        canvas[border_pixels(mask, thickness)] = colour
    return canvas.clip(0, 255).astype(np.uint8)


def save_overlay(path: str | Path, image, masks: dict, size=None) -> None:
    from skimage.io import imsave

    imsave(Path(path), draw_overlay(image, masks, size), check_contrast=False)


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 16, fill: int = 255) -> np.ndarray:
    """Two RGB pictures of one size next to each other, ``gap`` px of ``fill`` between them."""
    if left.shape != right.shape:
        raise ValueError(f"side_by_side needs pictures of one size, got {left.shape} and {right.shape}")
    spacer = np.full((left.shape[0], gap, *left.shape[2:]), fill, dtype=left.dtype)
    return np.concatenate([left, spacer, right], axis=1)
