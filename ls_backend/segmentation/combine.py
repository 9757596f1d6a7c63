"""The paper's rule for the segmentation reference (§3.5), on arrays; imports no torch.

The reference mask s* comes from two off-the-shelf models: DeepLab, more accurate as a
semantic mask, and Mask R-CNN, which separates instances (:func:`combine_masks`):

* Mask R-CNN finds **at most one** instance of the category with score >= ``score_threshold``
  (default 0.5): the reference is the DeepLab mask of the category;
* it finds **two or more**: the reference is the Mask R-CNN instance whose mask has the highest
  IoU with the initial projection (the silhouette at the rough start pose); with no initial
  projection, the instance with the largest mask area (ties: the higher score).
* Fallback: when the DeepLab mask is empty but Mask R-CNN found one instance, that instance.
* With a box the annotator drew (``box_mask``): the instance with the highest IoU with the
  box, whatever the count; when no instance touches the box, the DeepLab mask's objects
  mostly inside it (:func:`geometry.box.objects_in_box`).

Categories: ``"car"`` (COCO car + truck, VOC car) and ``"aeroplane"`` (aliases ``airplane``,
``aircraft``, ``plane``); case-insensitive; anything else raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.iou import ious
from geometry.masks import resize_mask


@dataclass(frozen=True)
class Category:
    """A finepose category and its label ids in the two models' label sets."""

    name: str
    coco_labels: tuple[int, ...]  # Mask R-CNN, COCO 91-index labels (0 = background)
    voc_label: int  # DeepLabV3, VOC 21 classes (0 = background)


CATEGORIES = {
    "car": Category("car", coco_labels=(3, 8), voc_label=7),  # COCO car, truck; VOC car
    "aeroplane": Category("aeroplane", coco_labels=(5,), voc_label=1),  # COCO airplane; VOC aeroplane
}
ALIASES = {"cars": "car", "airplane": "aeroplane", "aircraft": "aeroplane", "plane": "aeroplane"}


def category(name: str) -> Category:
    """The :class:`Category` for ``name`` (case-insensitive, aliases allowed); ``ValueError`` if unknown."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in CATEGORIES:
        known = ", ".join(sorted(CATEGORIES)) + " (aliases: " + ", ".join(sorted(ALIASES)) + ")"
        raise ValueError(f"unknown segmentation category {name!r}; known: {known}")
    return CATEGORIES[key]


@dataclass(frozen=True)
class Combined:
    mask: np.ndarray  # bool HxW
    source: str  # "deeplab" | "maskrcnn"
    instance_index: int | None  # index into the instances passed in; None for deeplab


def combine_masks(
    instance_masks: np.ndarray,
    instance_scores: np.ndarray,
    semantic_mask: np.ndarray,
    initial_mask: np.ndarray | None = None,
    score_threshold: float = 0.5,
    box_mask: np.ndarray | None = None,
) -> Combined:
    """The paper's rule, on arrays: choose the segmentation reference.

    ``instance_masks`` (N x H x W bool) and ``instance_scores`` (N) are Mask R-CNN's instances of
    the category; ``semantic_mask`` (H x W bool) is DeepLab's mask of the category;
    ``initial_mask`` (H x W bool, optional) is the projection at the initial pose.
    Instances scoring below ``score_threshold`` are ignored. At most one instance left: the
    DeepLab mask (or that one instance if the DeepLab mask is empty). Two or more: the instance
    with the highest IoU against ``initial_mask``, or without one the largest instance; ties go
    to the higher score. ``box_mask`` (H x W bool, optional): a box drawn around one object,
    which decides instead (the instance best inside it, see the module's rule).
    """
    semantic = np.asarray(semantic_mask, dtype=bool)
    masks = np.asarray(instance_masks, dtype=bool).reshape((-1, *semantic.shape))
    scores = np.asarray(instance_scores, dtype=float).reshape(-1)
    if len(scores) != len(masks):
        raise ValueError(f"{len(masks)} instance masks but {len(scores)} scores")
    kept = np.flatnonzero(scores >= score_threshold)
    if box_mask is not None:
        return _in_box(masks, scores, kept, semantic, np.asarray(box_mask, dtype=bool))
    if len(kept) <= 1:
        if len(kept) == 1 and not semantic.any():
            return Combined(masks[kept[0]].copy(), "maskrcnn", int(kept[0]))
        return Combined(semantic.copy(), "deeplab", None)
    if initial_mask is not None:
        initial = np.asarray(initial_mask, dtype=bool)
        if initial.shape != semantic.shape:
            raise ValueError(f"initial mask shape {initial.shape} differs from the masks' {semantic.shape}")
        key = ious(masks[kept], initial)
    else:
        key = masks[kept].reshape(len(kept), -1).sum(axis=1).astype(float)
    # lexicographic: best key first, then best score
    best = kept[np.lexsort((-scores[kept], -key))[0]]
    return Combined(masks[best].copy(), "maskrcnn", int(best))


def _in_box(masks, scores, kept, semantic, box) -> Combined:
    """The instance best inside ``box`` (highest IoU with it, ties: higher score), else the
    semantic mask's objects mostly inside it."""
    from geometry.box import objects_in_box

    if box.shape != semantic.shape:
        raise ValueError(f"box mask shape {box.shape} differs from the masks' {semantic.shape}")
    if len(kept):
        key = ious(masks[kept], box)
        best = kept[np.lexsort((-scores[kept], -key))[0]]
        if key.max() > 0:
            return Combined(masks[best].copy(), "maskrcnn", int(best))
    return Combined(objects_in_box(semantic, box).mask, "deeplab", None)


@dataclass(frozen=True)
class SegmentationResult:
    """The segmentation reference of one image.

    ``mask``: bool HxW at the input image size. ``source``: "deeplab" | "maskrcnn".
    ``instance_count``: Mask R-CNN instances of the category with score >= the threshold;
    ``scores``: their scores, highest first; ``instance_index``: index into ``scores`` of the
    chosen instance (None when the DeepLab mask is used).
    """

    mask: np.ndarray
    source: str
    instance_count: int
    scores: tuple[float, ...]
    instance_index: int | None
    category: str

    def summary(self) -> dict:
        """JSON-able description (no mask): source, counts, scores, chosen index, mask area in pixels."""
        return {
            "category": self.category,
            "source": self.source,
            "instance_count": self.instance_count,
            "scores": [round(s, 4) for s in self.scores],
            "instance_index": self.instance_index,
            "mask_area": int(self.mask.sum()),
            "mask_size": [int(self.mask.shape[1]), int(self.mask.shape[0])],
        }


@dataclass(frozen=True)
class Detections:
    """Both models' output for one photo, before the paper's rule picks the reference: what
    the segmentation stage of ``finepose prelabel`` hands to the refinement stage, which
    imports no torch.

    ``instance_masks`` (N x h x w bool, scores >= the threshold, highest first),
    ``instance_scores`` (N), ``semantic_mask`` (h x w bool) are at the size the models saw
    (the photo scaled down to ``max_side``); ``size`` is the photo's own (width, height).
    """

    instance_masks: np.ndarray
    instance_scores: np.ndarray
    semantic_mask: np.ndarray
    size: tuple[int, int]
    category: str
    score_threshold: float = 0.5

    def reference(self, initial_mask: np.ndarray | None = None,
                  box_mask: np.ndarray | None = None) -> SegmentationResult:
        """The reference by :func:`combine_masks`, at the photo's size; ``initial_mask``
        and ``box_mask``: bool masks of any size (resized to the models' size)."""
        height, width = self.semantic_mask.shape
        initial = None if initial_mask is None else resize_mask(initial_mask, width, height)
        box = None if box_mask is None else resize_mask(box_mask, width, height)
        chosen = combine_masks(self.instance_masks, self.instance_scores, self.semantic_mask, initial,
                               self.score_threshold, box)
        return SegmentationResult(
            mask=resize_mask(chosen.mask, *self.size),
            source=chosen.source,
            instance_count=len(self.instance_scores),
            scores=tuple(float(s) for s in self.instance_scores),
            instance_index=chosen.instance_index,
            category=self.category,
        )
