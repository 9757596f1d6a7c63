"""Intersection over union of binary masks."""

from __future__ import annotations

import numpy as np

from .render import Window


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks of the same shape; 0 when both are empty."""
    a = np.asarray(a, dtype=bool)
    return float(ious(a[None], b)[0])


def ious(masks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """IoU of each of ``masks`` (N x H x W bool) with ``reference`` (H x W bool); 0 where both
    are empty."""
    reference = np.asarray(reference, dtype=bool)
    masks = np.asarray(masks, dtype=bool)
    if masks.shape[1:] != reference.shape:
        raise ValueError(f"masks differ in shape: {masks.shape[1:]} vs {reference.shape}")
    flat = masks.reshape(len(masks), -1)
    inter = np.count_nonzero(flat & reference.reshape(-1), axis=1)
    union = np.count_nonzero(flat, axis=1) + np.count_nonzero(reference) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


class Reference:
    """A reference mask prepared for fast IoU against silhouettes given as :class:`Window`."""

    def __init__(self, mask: np.ndarray):
        self.mask = np.asarray(mask, dtype=bool)
        if self.mask.ndim != 2:
            raise ValueError(f"reference mask must be 2-D, got shape {self.mask.shape}")
        self.area = int(np.count_nonzero(self.mask))
        if self.area == 0:
            raise ValueError("reference mask is empty: nothing to align to")
        self.height, self.width = self.mask.shape

    def iou_window(self, window: Window) -> float:
        """IoU of the full-image silhouette that ``window`` stands for with the reference."""
        h, w = window.mask.shape
        inside = np.count_nonzero(window.mask)
        inter = np.count_nonzero(self.mask[window.y0 : window.y0 + h, window.x0 : window.x0 + w] & window.mask)
        union = inside + self.area - inter
        return inter / union if union else 0.0
