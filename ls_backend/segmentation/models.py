"""The segmentation reference of a photo: torchvision's Mask R-CNN and DeepLabV3 run on it and
combined by the paper's rule (:mod:`.combine`), with weights from :mod:`.weights`.

The paper names DeepLab v3+; torchvision ships DeepLabV3 (no "+" decoder), used here. Images
are ``HxWx3`` uint8 RGB arrays (anything :func:`geometry.images.as_rgb` accepts); masks are
boolean ``HxW`` arrays at the input image size, in pixels. Images larger than
``Segmenter.max_side`` (1333 px, Mask R-CNN's own maximum) are segmented scaled down and the
mask is scaled back up (:func:`geometry.masks.resize_mask`). CPU cost (2 cores, 640x427
image, random weights): ~2.5 s Mask R-CNN + ~2.5 s DeepLab.
"""

from __future__ import annotations

import threading
import numpy as np
import torch
import torch.nn.functional as F

from geometry.images import as_rgb

from ls_backend.errors import MissingWeightsError, WeightsError
from ls_backend.process import made_once
from ls_backend.segmentation.combine import Detections, SegmentationResult, category
from ls_backend.segmentation.weights import WEIGHTS, WeightsConfig, default_device, load_model


class Segmenter:
    """Mask R-CNN and DeepLabV3 loaded once (lazily, on first use) and used under a lock.

    ``config``: where the weights are and the device (:class:`WeightsConfig`; ``device``
    overrides its device). ``score_threshold``: Mask R-CNN instance score kept (0.5).
    ``max_side``: images whose longer side exceeds it (pixels) are scaled down for both models
    and the mask scaled back (1333 is Mask R-CNN's own maximum, so it loses nothing there).
    ``deeplab_resize``: DeepLab's input short side (520, torchvision's preset).
    ``maskrcnn_min_size``: Mask R-CNN's internal short side (800, torchvision's default).
    """

    def __init__(self, config: WeightsConfig | None = None, device: str | torch.device | None = None,
                 score_threshold: float = 0.5, max_side: int = 1333, deeplab_resize: int = 520,
                 maskrcnn_min_size: int = 800):
        self.config = config or WeightsConfig()
        self.device = torch.device(device) if device is not None else default_device(self.config)
        self.score_threshold = float(score_threshold)
        self.max_side = int(max_side)
        self.deeplab_resize = int(deeplab_resize)
        self.maskrcnn_min_size = int(maskrcnn_min_size)
        self._lock = threading.RLock()
        self._maskrcnn: torch.nn.Module | None = None
        self._deeplab: torch.nn.Module | None = None

    @property
    def loaded(self) -> bool:
        return self._maskrcnn is not None and self._deeplab is not None

    def load(self) -> "Segmenter":
        """Load both models now (else on first use).

        Raises :class:`MissingWeightsError` (when every failure is a missing file) or
        :class:`WeightsError`; the message covers both models when both fail.
        """
        with self._lock:
            errors: list[WeightsError] = []
            if self._maskrcnn is None:
                try:
                    net = load_model("maskrcnn", self.config)
                    net.transform.min_size = (self.maskrcnn_min_size,)
                    net.roi_heads.score_thresh = self.score_threshold  # fewer full-size masks pasted
                    self._maskrcnn = net.to(self.device)
                except WeightsError as exc:
                    errors.append(exc)
            if self._deeplab is None:
                try:
                    self._deeplab = load_model("deeplab", self.config).to(self.device)
                except WeightsError as exc:
                    errors.append(exc)
            if errors:
                details = "\n".join(str(e) for e in errors)
                if all(isinstance(e, MissingWeightsError) for e in errors):  # what to do first, then where
                    raise MissingWeightsError(
                        "segmentation weights not installed: run 'finepose weights download' on the backend's machine, "
                        f"or give the task a reference mask. {details}") from errors[0]
                raise WeightsError(details) from errors[0]
        return self

    def instances(self, image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mask R-CNN instances of category ``name`` scoring above the threshold.

        Returns (N x H x W bool masks at the image size, N scores), highest score first.
        """
        return self.instances_batch([image], [name])[0]

    def instances_batch(self, images: list[np.ndarray], names: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`instances` of several images in one Mask R-CNN call (its transform resizes
        each to the same short side and pads them into one batch)."""
        cats, rgbs = [category(n) for n in names], [as_rgb(i) for i in images]
        self.load()
        preset = WEIGHTS["maskrcnn"].transforms()  # 0-1 float
        xs = [preset(torch.from_numpy(rgb).permute(2, 0, 1)).to(self.device) for rgb in rgbs]
        with self._lock, torch.inference_mode():
            outs = self._maskrcnn(xs)
        found = []
        for cat, out in zip(cats, outs):
            keep = torch.isin(out["labels"], torch.tensor(cat.coco_labels, device=out["labels"].device))
            masks = (out["masks"][keep, 0] > 0.5).cpu().numpy()  # torchvision's mask threshold
            found.append((masks, out["scores"][keep].cpu().numpy()))
        return found

    def semantic(self, image: np.ndarray, name: str) -> np.ndarray:
        """DeepLab's mask of category ``name``: bool HxW (pixels where its class wins the argmax)."""
        cat, rgb = category(name), as_rgb(image)
        self.load()
        preset = WEIGHTS["deeplab"].transforms(resize_size=self.deeplab_resize)  # resize, 0-1, ImageNet mean/std
        x = preset(torch.from_numpy(rgb).permute(2, 0, 1)).to(self.device)
        with self._lock, torch.inference_mode():
            logits = self._deeplab(x[None])["out"][0]
        others = torch.cat([logits[: cat.voc_label], logits[cat.voc_label + 1 :]]).amax(dim=0)
        margin = (logits[cat.voc_label] - others).cpu()  # > 0 where the class wins; upsampled, not the 21 maps
        h, w = rgb.shape[:2]
        if tuple(margin.shape) != (h, w):
            margin = F.interpolate(margin[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        return (margin > 0).numpy()

    def segment(self, image: np.ndarray, name: str, initial_mask: np.ndarray | None = None,
                box_mask: np.ndarray | None = None) -> SegmentationResult:
        """The segmentation reference of ``image`` for category ``name`` (see :mod:`.combine`).

        ``initial_mask``: bool mask of the projection at the initial pose, any size (resized
        to the image). ``box_mask``: bool mask of a box drawn around one object, any size (see
        :func:`.combine.combine_masks`). Raises ``ValueError`` for an unknown category or bad image,
        :class:`MissingWeightsError`/:class:`WeightsError` when the models cannot be loaded.
        """
        return self.detect(image, name).reference(initial_mask, box_mask)

    def detect(self, image: np.ndarray, name: str) -> Detections:
        """Both models' output for ``image`` (:class:`~.combine.Detections`), before the rule
        picks the reference; :meth:`segment` without the choice."""
        return self.detect_batch([image], [name])[0]

    def detect_batch(self, images: list[np.ndarray], names: list[str]) -> list[Detections]:
        """:meth:`detect` for several photos (category ``names[i]`` in ``images[i]``): Mask R-CNN
        sees them as one batch, DeepLab one at a time (its inputs keep their aspect ratios)."""
        rgbs = [as_rgb(image) for image in images]
        work = [self._scaled(rgb) for rgb in rgbs]
        found = self.instances_batch(work, names)
        detections = []
        for rgb, scaled, name, (masks, scores) in zip(rgbs, work, names, found):
            kept = scores >= self.score_threshold
            detections.append(Detections(masks[kept], scores[kept], self.semantic(scaled, name),
                                         (rgb.shape[1], rgb.shape[0]), category(name).name, self.score_threshold))
        return detections

    def _scaled(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` scaled down (antialiased) so that its longer side is at most ``max_side``."""
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale >= 1.0:
            return rgb
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        t = torch.from_numpy(rgb).permute(2, 0, 1).float()[None]
        work = F.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]
        return work.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def get_segmenter(config: WeightsConfig | None = None) -> Segmenter:
    """The process-wide :class:`Segmenter` for ``config`` (models load on first use, once)."""
    return _segmenter(config or WeightsConfig())


@made_once
def _segmenter(config: WeightsConfig) -> Segmenter:
    return Segmenter(config)
