"""Segmentation reference for the pose refiner: Mask R-CNN and DeepLabV3 combined (paper §3.5).

The paper takes the reference mask s* from two off-the-shelf models: DeepLab, more accurate
as a semantic mask, and Mask R-CNN, which separates instances. The rule (:func:`combine_masks`):

* Mask R-CNN finds **at most one** instance of the category with score >= ``score_threshold``
  (default 0.5): the reference is the DeepLab mask of the category;
* it finds **two or more**: the reference is the Mask R-CNN instance whose mask has the highest
  IoU with the initial projection (the silhouette at the rough start pose); with no initial
  projection, the instance with the largest mask area (ties: the higher score).
* Fallback: when the DeepLab mask is empty but Mask R-CNN found one instance, that instance.

The paper names DeepLab v3+; torchvision ships DeepLabV3 (no "+" decoder), used here.
Models (torchvision, built with ``weights=None, weights_backbone=None``, so nothing is ever
downloaded; the state dict is then loaded from a local file with ``weights_only=True``):

==========  ==================================  =================================  =========================
key         model                               labels used                        input
==========  ==================================  =================================  =========================
maskrcnn    ``maskrcnn_resnet50_fpn`` COCO_V1   COCO 91: car 3, truck 8,           RGB 0-1; resized inside
                                                airplane 5                         the model (short side 800)
deeplab     ``deeplabv3_resnet101``             VOC 21: car 7, aeroplane 1         short side resized to 520,
            COCO_WITH_VOC_LABELS_V1                                                ImageNet mean/std
==========  ==================================  =================================  =========================

Categories: ``"car"`` (COCO car + truck, VOC car) and ``"aeroplane"`` (aliases ``airplane``,
``aircraft``, ``plane``); case-insensitive; anything else raises ``ValueError``.

Weights (file names are the basenames of the weight enums' URLs):

* ``$TORCH_HOME/hub/checkpoints/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth`` and
  ``$TORCH_HOME/hub/checkpoints/deeplabv3_resnet101_coco-586e9e4e.pth`` — torch's own cache
  (``TORCH_HOME`` defaults to ``$XDG_CACHE_HOME/torch``, i.e. ``~/.cache/torch``). The hex
  part of the name is a sha256 prefix and is checked, as ``torch.hub`` does
  (``FINEPOSE_VERIFY_WEIGHTS=0`` turns the check off).
* or explicit files: ``FINEPOSE_MASKRCNN_WEIGHTS``, ``FINEPOSE_DEEPLAB_WEIGHTS``. These are the
  user's own files (possibly fine-tuned) and are not hash-checked; they must still be state
  dicts of the same architectures (COCO 91 / VOC 21 classes).

Missing weights raise :class:`MissingWeightsError` naming the file and both places; unreadable,
corrupt or mismatching files raise :class:`WeightsError`. A backend can catch them, report,
and still serve tasks that carry their own reference mask.

Device: ``FINEPOSE_DEVICE`` (e.g. ``cpu``, ``cuda:1``), else CUDA when torch sees a GPU, else
CPU. Images are ``HxWx3`` uint8 RGB arrays (``HxW`` grey and ``HxWx4`` RGBA are accepted);
masks are boolean ``HxW`` arrays at the input image size, in pixels. Images larger than
``Segmenter.max_side`` (1333 px, Mask R-CNN's own maximum) are segmented scaled down and the
mask is scaled back up. CPU cost (2 cores, 640x427 image, random weights): ~2.5 s Mask R-CNN
+ ~2.5 s DeepLab.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn
from torchvision.models.segmentation import DeepLabV3_ResNet101_Weights, deeplabv3_resnet101

from ls_backend.errors import MissingWeightsError, WeightsError

# --------------------------------------------------------------------------- categories


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


# --------------------------------------------------------------------------- combination rule


@dataclass(frozen=True)
class Combined:
    mask: np.ndarray  # bool HxW
    source: str  # "deeplab" | "maskrcnn"
    instance_index: int | None  # index into the instances passed in; None for deeplab


def mask_ious(masks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """IoU of each of ``masks`` (N x H x W bool) with ``reference`` (H x W bool); 0 where both are empty."""
    masks = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    reference = np.asarray(reference, dtype=bool).reshape(-1)
    inter = (masks & reference).sum(axis=1)
    union = masks.sum(axis=1) + reference.sum() - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def combine_masks(
    instance_masks: np.ndarray,
    instance_scores: np.ndarray,
    semantic_mask: np.ndarray,
    initial_mask: np.ndarray | None = None,
    score_threshold: float = 0.5,
) -> Combined:
    """The paper's rule, on arrays: choose the segmentation reference.

    ``instance_masks`` (N x H x W bool) and ``instance_scores`` (N) are Mask R-CNN's instances of
    the category; ``semantic_mask`` (H x W bool) is DeepLab's mask of the category;
    ``initial_mask`` (H x W bool, optional) is the projection at the initial pose.
    Instances scoring below ``score_threshold`` are ignored. At most one instance left: the
    DeepLab mask (or that one instance if the DeepLab mask is empty). Two or more: the instance
    with the highest IoU against ``initial_mask``, or without one the largest instance; ties go
    to the higher score.
    """
    semantic = np.asarray(semantic_mask, dtype=bool)
    masks = np.asarray(instance_masks, dtype=bool).reshape((-1, *semantic.shape))
    scores = np.asarray(instance_scores, dtype=float).reshape(-1)
    if len(scores) != len(masks):
        raise ValueError(f"{len(masks)} instance masks but {len(scores)} scores")
    kept = np.flatnonzero(scores >= score_threshold)
    if len(kept) <= 1:
        if len(kept) == 1 and not semantic.any():
            return Combined(masks[kept[0]].copy(), "maskrcnn", int(kept[0]))
        return Combined(semantic.copy(), "deeplab", None)
    if initial_mask is not None:
        initial = np.asarray(initial_mask, dtype=bool)
        if initial.shape != semantic.shape:
            raise ValueError(f"initial mask shape {initial.shape} differs from the masks' {semantic.shape}")
        key = mask_ious(masks[kept], initial)
    else:
        key = masks[kept].reshape(len(kept), -1).sum(axis=1).astype(float)
    # lexicographic: best key first, then best score
    best = kept[np.lexsort((-scores[kept], -key))[0]]
    return Combined(masks[best].copy(), "maskrcnn", int(best))


# --------------------------------------------------------------------------- weights

WEIGHTS = {
    "maskrcnn": MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
    "deeplab": DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1,
}
WEIGHTS_ENV = {"maskrcnn": "FINEPOSE_MASKRCNN_WEIGHTS", "deeplab": "FINEPOSE_DEEPLAB_WEIGHTS"}
TITLES = {
    "maskrcnn": "Mask R-CNN (maskrcnn_resnet50_fpn, COCO)",
    "deeplab": "DeepLabV3 (deeplabv3_resnet101, COCO with VOC labels)",
}
_HASH = re.compile(r"-([a-f0-9]+)\.")  # as torch.hub.HASH_REGEX: name-<sha256 prefix>.pth


def _check(model: str) -> str:
    if model not in WEIGHTS:
        raise ValueError(f"unknown segmentation model {model!r}; known: {', '.join(WEIGHTS)}")
    return model


def weights_file_name(model: str) -> str:
    """torchvision's cache file name for ``model`` ("maskrcnn" | "deeplab"), from its weight enum's URL."""
    return os.path.basename(urlparse(WEIGHTS[_check(model)].url).path)


def cache_dir() -> Path:
    """torch's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(model: str) -> Path:
    """Where ``model``'s weights are read from: ``$FINEPOSE_<MODEL>_WEIGHTS`` if set, else the torch cache."""
    explicit = os.environ.get(WEIGHTS_ENV[_check(model)])
    return Path(explicit).expanduser() if explicit else cache_dir() / weights_file_name(model)


def verify_weights() -> bool:
    """False when ``FINEPOSE_VERIFY_WEIGHTS`` is 0/false/no/off: cache files are then not hash-checked."""
    return os.environ.get("FINEPOSE_VERIFY_WEIGHTS", "1").strip().lower() not in {"0", "false", "no", "off"}


def check_hash(path: Path, name: str | None = None) -> None:
    """Check that ``path``'s sha256 starts with the hex prefix in ``name`` (default: its own name).

    Names without such a prefix pass. Raises :class:`WeightsError` on a mismatch.
    """
    match = _HASH.search(name or Path(path).name)
    if not match:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(match.group(1)):
        raise WeightsError(
            f"{path}: sha256 {digest.hexdigest()[:12]}... does not start with {match.group(1)} as its name says; "
            "the file is incomplete or not torchvision's. Download it again, or set FINEPOSE_VERIFY_WEIGHTS=0 "
            "to use it anyway."
        )


def missing_message(model: str) -> str:
    """What to put where for ``model``'s weights (both options)."""
    name, env = weights_file_name(model), WEIGHTS_ENV[_check(model)]
    explicit = os.environ.get(env)
    where = f"{env}={explicit} does not exist" if explicit else f"{cache_dir() / name} does not exist"
    return (
        f"{TITLES[model]} weights not found: {where}. Put {name} (from {WEIGHTS[model].url}) "
        f"into {cache_dir()}/ (that is $TORCH_HOME/hub/checkpoints/), or set {env} to the path of the file."
    )


def load_state_dict(model: str) -> dict[str, torch.Tensor]:
    """``model``'s state dict from :func:`weights_path`, on the CPU, with ``weights_only=True``.

    Cache files are hash-checked (unless ``FINEPOSE_VERIFY_WEIGHTS=0``); explicit paths are not.
    Raises :class:`MissingWeightsError` or :class:`WeightsError`.
    """
    path = weights_path(model)
    if not path.is_file():
        raise MissingWeightsError(missing_message(model))
    if not os.environ.get(WEIGHTS_ENV[model]) and verify_weights():
        check_hash(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and tensor errors all mean "not a usable checkpoint"
        raise WeightsError(
            f"{TITLES[model]} weights {path} could not be read ({type(exc).__name__}: {exc}); "
            f"replace it with {weights_file_name(model)} from {WEIGHTS[model].url}"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{TITLES[model]} weights {path} are not a state dict (name -> tensor)")
    return state


def build_model(model: str, state_dict: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """torchvision's architecture for ``model`` with ``weights=None`` (no download), state dict loaded, eval mode.

    Without ``state_dict`` the model keeps its random initialisation (tests use it to make weights).
    DeepLab is built with its auxiliary head so that torchvision's checkpoint loads strictly; the
    head is dropped after loading (inference only uses ``"out"``).
    """
    if _check(model) == "maskrcnn":
        net = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    else:
        net = deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    if state_dict is not None:
        try:
            net.load_state_dict(state_dict)
        except RuntimeError as exc:
            raise WeightsError(f"{TITLES[model]} weights {weights_path(model)} do not fit the model: {exc}") from exc
    if model == "deeplab":
        net.aux_classifier = None
    return net.eval()


def default_device() -> torch.device:
    """``$FINEPOSE_DEVICE`` if set, else ``cuda`` when torch sees a GPU, else ``cpu``."""
    name = os.environ.get("FINEPOSE_DEVICE", "").strip()
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


# --------------------------------------------------------------------------- models


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


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as HxWx3 uint8: grey is repeated, alpha dropped, floats in [0, 1] scaled by 255."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 1:
        raise ValueError(f"image must be HxW, HxWx3 or HxWx4, got shape {img.shape}")
    img = img[:, :, :3]
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating):
            img = np.clip(np.nan_to_num(img) * 255.0 + 0.5, 0, 255)
        img = img.astype(np.uint8)
    return np.ascontiguousarray(img)


def _resize_mask(mask: np.ndarray | torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A bool or float HxW map resized bilinearly (bool: as 0/1, > 0.5 kept); float maps stay float."""
    t = torch.as_tensor(mask)
    was_bool = t.dtype == torch.bool
    t = t.float()
    if tuple(t.shape) != (height, width):
        t = F.interpolate(t[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return t > 0.5 if was_bool else t


class Segmenter:
    """Mask R-CNN and DeepLabV3 loaded once (lazily, on first use) and used under a lock.

    ``score_threshold``: Mask R-CNN instance score kept (0.5). ``max_side``: images whose longer
    side exceeds it (pixels) are scaled down for both models and the mask scaled back (1333 is
    Mask R-CNN's own maximum, so it loses nothing there). ``deeplab_resize``: DeepLab's input
    short side (520, torchvision's preset). ``maskrcnn_min_size``: Mask R-CNN's internal short
    side (800, torchvision's default).
    """

    def __init__(self, device: str | torch.device | None = None, score_threshold: float = 0.5,
                 max_side: int = 1333, deeplab_resize: int = 520, maskrcnn_min_size: int = 800):
        self.device = torch.device(device) if device is not None else default_device()
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
                    net = build_model("maskrcnn", load_state_dict("maskrcnn"))
                    net.transform.min_size = (self.maskrcnn_min_size,)
                    net.roi_heads.score_thresh = self.score_threshold  # fewer full-size masks pasted
                    self._maskrcnn = net.to(self.device)
                except WeightsError as exc:
                    errors.append(exc)
            if self._deeplab is None:
                try:
                    self._deeplab = build_model("deeplab", load_state_dict("deeplab")).to(self.device)
                except WeightsError as exc:
                    errors.append(exc)
            if errors:
                kind = MissingWeightsError if all(isinstance(e, MissingWeightsError) for e in errors) else WeightsError
                raise kind("\n".join(str(e) for e in errors)) from errors[0]
        return self

    def instances(self, image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mask R-CNN instances of category ``name`` scoring above the threshold.

        Returns (N x H x W bool masks at the image size, N scores), highest score first.
        """
        cat, rgb = category(name), as_rgb(image)
        self.load()
        x = WEIGHTS["maskrcnn"].transforms()(torch.from_numpy(rgb).permute(2, 0, 1)).to(self.device)  # 0-1 float
        with self._lock, torch.inference_mode():
            out = self._maskrcnn([x])[0]
        keep = torch.isin(out["labels"], torch.tensor(cat.coco_labels, device=out["labels"].device))
        masks = (out["masks"][keep, 0] > 0.5).cpu().numpy()  # torchvision's mask threshold
        return masks, out["scores"][keep].cpu().numpy()

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
        return (_resize_mask(margin, h, w) > 0).numpy()

    def segment(self, image: np.ndarray, name: str, initial_mask: np.ndarray | None = None) -> SegmentationResult:
        """The segmentation reference of ``image`` for category ``name`` (see the module's rule).

        ``initial_mask``: bool mask of the projection at the initial pose, any size (resized
        bilinearly to the image). Raises ``ValueError`` for an unknown category or bad image,
        :class:`MissingWeightsError`/:class:`WeightsError` when the models cannot be loaded.
        """
        cat, rgb = category(name), as_rgb(image)
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        work = rgb
        if scale < 1.0:
            h, w = max(1, round(height * scale)), max(1, round(width * scale))
            t = torch.from_numpy(rgb).permute(2, 0, 1).float()[None]
            work = F.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]
            work = work.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        h, w = work.shape[:2]
        masks, scores = self.instances(work, cat.name)
        kept = scores >= self.score_threshold
        masks, scores = masks[kept], scores[kept]
        semantic = self.semantic(work, cat.name)
        initial = None if initial_mask is None else _resize_mask(np.asarray(initial_mask, dtype=bool), h, w).numpy()
        chosen = combine_masks(masks, scores, semantic, initial, self.score_threshold)
        mask = _resize_mask(chosen.mask, height, width).numpy()
        return SegmentationResult(
            mask=mask,
            source=chosen.source,
            instance_count=len(scores),
            scores=tuple(float(s) for s in scores),
            instance_index=chosen.instance_index,
            category=cat.name,
        )


_default: Segmenter | None = None
_default_lock = threading.Lock()


def get_segmenter() -> Segmenter:
    """The process-wide :class:`Segmenter` (models load on first use, once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Segmenter()
        return _default


def segment(image: np.ndarray, name: str, initial_mask: np.ndarray | None = None) -> SegmentationResult:
    """:meth:`Segmenter.segment` with the process-wide segmenter."""
    return get_segmenter().segment(image, name, initial_mask)
