"""The segmentation models' weights: where the files are, their hash check, the messages when
they are missing or unusable, and loading them into torchvision's architectures.

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

Where weights are read from (:class:`WeightsConfig`, built from
:class:`~ls_backend.settings.Settings`):

* ``$TORCH_HOME/hub/checkpoints/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth`` and
  ``$TORCH_HOME/hub/checkpoints/deeplabv3_resnet101_coco-586e9e4e.pth`` — torch's own cache
  (``TORCH_HOME``, read by torch, defaults to ``~/.cache/torch``); the file names are the
  basenames of the weight enums' URLs. The hex part of the name is a sha256 prefix and is
  checked, as ``torch.hub`` does (``FINEPOSE_VERIFY_WEIGHTS=0`` turns the check off).
* or explicit files (``FINEPOSE_MASKRCNN_WEIGHTS``, ``FINEPOSE_DEEPLAB_WEIGHTS``): the user's
  own files (possibly fine-tuned), not hash-checked; they must still be state dicts of the same
  architectures (COCO 91 / VOC 21 classes).

Missing weights raise :class:`MissingWeightsError` naming the file and both places; unreadable,
corrupt or mismatching files raise :class:`WeightsError`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn
from torchvision.models.segmentation import DeepLabV3_ResNet101_Weights, deeplabv3_resnet101

from ls_backend.errors import MissingWeightsError, WeightsError

WEIGHTS = {
    "maskrcnn": MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
    "deeplab": DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1,
}
#: The setting (environment variable) naming each model's own weights file.
WEIGHTS_ENV = {"maskrcnn": "FINEPOSE_MASKRCNN_WEIGHTS", "deeplab": "FINEPOSE_DEEPLAB_WEIGHTS"}
TITLES = {
    "maskrcnn": "Mask R-CNN (maskrcnn_resnet50_fpn, COCO)",
    "deeplab": "DeepLabV3 (deeplabv3_resnet101, COCO with VOC labels)",
}
_HASH = re.compile(r"-([a-f0-9]+)\.")  # as torch.hub.HASH_REGEX: name-<sha256 prefix>.pth


@dataclass(frozen=True)
class WeightsConfig:
    """Where the weights come from and where the models run.

    ``maskrcnn`` / ``deeplab``: explicit weight files (None: torch's cache); ``verify``: check
    the cache files' sha256 prefix; ``device``: a torch device name ("" : CUDA when torch sees
    a GPU, else CPU).
    """

    maskrcnn: Path | None = None
    deeplab: Path | None = None
    verify: bool = True
    device: str = ""

    @classmethod
    def from_settings(cls, settings) -> "WeightsConfig":
        """The segmentation part of :class:`ls_backend.settings.Settings`."""
        return cls(maskrcnn=settings.maskrcnn_weights, deeplab=settings.deeplab_weights,
                   verify=settings.verify_weights, device=settings.device)

    def explicit(self, model: str) -> Path | None:
        """``model``'s explicit weights file, or None (torch's cache)."""
        return {"maskrcnn": self.maskrcnn, "deeplab": self.deeplab}[_check(model)]


def _check(model: str) -> str:
    if model not in WEIGHTS:
        raise ValueError(f"unknown segmentation model {model!r}; known: {', '.join(WEIGHTS)}")
    return model


def weights_file_name(model: str) -> str:
    """torchvision's cache file name for ``model`` ("maskrcnn" | "deeplab"), from its weight enum's URL."""
    return os.path.basename(urlparse(WEIGHTS[_check(model)].url).path)


def cache_dir() -> Path:
    """torch's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (torch reads it at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(model: str, config: WeightsConfig = WeightsConfig()) -> Path:
    """Where ``model``'s weights are read from: the configured file, else the torch cache."""
    return config.explicit(model) or cache_dir() / weights_file_name(model)


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


def missing_message(model: str, config: WeightsConfig = WeightsConfig()) -> str:
    """What to put where for ``model``'s weights (both options)."""
    name, env, explicit = weights_file_name(model), WEIGHTS_ENV[model], config.explicit(model)
    where = f"{env}={explicit} does not exist" if explicit else f"{cache_dir() / name} does not exist"
    return (
        f"{TITLES[model]} weights not found: {where}. Put {name} (from {WEIGHTS[model].url}) "
        f"into {cache_dir()}/ (that is $TORCH_HOME/hub/checkpoints/), or set {env} to the path of the file."
    )


def load_state_dict(model: str, config: WeightsConfig = WeightsConfig()) -> dict[str, torch.Tensor]:
    """``model``'s state dict from :func:`weights_path`, on the CPU, with ``weights_only=True``.

    Cache files are hash-checked (unless ``config.verify`` is off); explicit files are not.
    Raises :class:`MissingWeightsError` or :class:`WeightsError`.
    """
    path = weights_path(model, config)
    if not path.is_file():
        raise MissingWeightsError(missing_message(model, config))
    if config.explicit(model) is None and config.verify:
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


def build_model(model: str, state_dict: dict[str, torch.Tensor] | None = None,
                source: Path | str = "given") -> torch.nn.Module:
    """torchvision's architecture for ``model`` with ``weights=None`` (no download), state dict
    loaded, eval mode; ``source`` names the weights in errors.

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
            raise WeightsError(f"{TITLES[model]} weights {source} do not fit the model: {exc}") from exc
    if model == "deeplab":
        net.aux_classifier = None
    return net.eval()


def load_model(model: str, config: WeightsConfig = WeightsConfig()) -> torch.nn.Module:
    """``model`` built with its configured weights (:func:`load_state_dict`, :func:`build_model`)."""
    return build_model(model, load_state_dict(model, config), weights_path(model, config))


def default_device(config: WeightsConfig = WeightsConfig()) -> torch.device:
    """``config.device`` if set, else ``cuda`` when torch sees a GPU, else ``cpu``."""
    return torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def status(config: WeightsConfig = WeightsConfig(), check: bool = True) -> dict[str, dict]:
    """Per model: its file, whether it is there, and (cache files, with ``check``: reads the
    file) whether its hash checks."""
    found = {}
    for model in WEIGHTS:
        path = weights_path(model, config)
        entry = {"file": str(path), "present": path.is_file()}
        if check and entry["present"] and config.explicit(model) is None and config.verify:
            try:
                check_hash(path)
                entry["hash"] = "ok"
            except WeightsError:
                entry["hash"] = "mismatch"
        found[model] = entry
    return found


def download(model: str, config: WeightsConfig = WeightsConfig(), base_url: str | None = None,
             progress: bool = True, timeout_s: float = 60.0) -> Path:
    """Fetch ``model``'s weights into :func:`weights_path` with torch.hub's own downloader
    (written to a temporary file and moved into place; the sha256 prefix in the name is checked
    unless ``config.verify`` is off). ``base_url``: a mirror holding the same file names instead
    of download.pytorch.org. ``timeout_s``: the most a connection or one read may wait
    (torch.hub takes none, so it is the process's socket default meanwhile: a command-line
    use). Returns the path; raises :class:`WeightsError` naming the URL."""
    import socket

    path = weights_path(model, config)
    url = f"{base_url.rstrip('/')}/{weights_file_name(model)}" if base_url else WEIGHTS[model].url
    prefix = _HASH.search(weights_file_name(model))
    hash_prefix = prefix.group(1) if prefix and config.verify else None
    path.parent.mkdir(parents=True, exist_ok=True)
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=progress)
    except RuntimeError as exc:  # torch.hub's hash mismatch (it removes the partial file)
        raise WeightsError(f"{TITLES[model]} weights from {url}: {exc}") from None
    except OSError as exc:  # URLError, HTTPError, a timeout, a full disk
        raise WeightsError(f"{TITLES[model]} weights could not be downloaded from {url}: {exc}") from None
    finally:
        socket.setdefaulttimeout(before)
    return path
