"""Task media (photos, reference masks) from Label Studio URLs, fetched under a strict policy.

Accepted URLs: Label Studio's relative ones (``/data/upload/...``, ``/storage-data/...``,
``/data/local-files/?d=...``), cloud URIs (``s3://``, ``gs://``, ``azure-blob://``, presigned
by Label Studio), and ``http(s)`` URLs whose host is ``LABEL_STUDIO_URL``'s or in
``FINEPOSE_ALLOWED_HOSTS``. Refused: other schemes (``file://``, ...), bare paths, any ``..``
path segment, redirects to a host outside the policy, files over the size limits.
Downloads go through label-studio-sdk's ``get_local_path`` (the credential of
:func:`ls_backend.labelstudio.connection`, a PAT's access token or the legacy key, is sent to
Label Studio's host only); local-files URLs are read straight from disk when their path lies in one
of ``FINEPOSE_LOCAL_FILES_ROOTS`` (the SDK itself also reads them from Label Studio's
``LOCAL_FILES_DOCUMENT_ROOT`` when that is set), and downloaded from Label Studio otherwise.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import requests

from ls_backend import labelstudio
from ls_backend.errors import MediaError
from ls_backend.settings import Settings

LS_RELATIVE_PREFIXES = ("/data/upload/", "/data/local-files/", "/storage-data/")
CLOUD_PREFIXES = ("s3://", "gs://", "azure-blob://")


class _PolicySession(requests.Session):
    """A requests session that refuses responses redirecting outside the allowed hosts and
    bodies announced as larger than the limit."""

    def __init__(self, hosts: set[str], max_bytes: int):
        super().__init__()
        self.hosts = hosts
        self.max_bytes = max_bytes
        self.hooks["response"].append(self._check)

    def _check(self, response, *args, **kwargs):
        if response.is_redirect:
            target = urlparse(requests.compat.urljoin(response.url, response.headers.get("location", "")))
            if target.scheme not in ("http", "https") or target.netloc not in self.hosts:
                raise MediaError(f"refused redirect from {response.url} to {target.geturl()}: host not allowed")
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            raise MediaError(f"{response.url}: {length} bytes, over the limit of {self.max_bytes}")
        return response


def check_url(url, settings: Settings) -> str:
    """``url`` when the policy allows it; otherwise :class:`MediaError` saying why."""
    if not isinstance(url, str) or not url.strip():
        raise MediaError(f"media URL must be a non-empty string, got {url!r}")
    url = url.strip()
    parsed = urlparse(url)
    segments = unquote(parsed.path).split("/") + _local_files_path(url).split("/")
    if ".." in segments or "\\" in url:
        raise MediaError(f"refused media URL {url!r}: '..' or backslashes in the path")
    if url.startswith(CLOUD_PREFIXES) or url.startswith(LS_RELATIVE_PREFIXES):
        if not settings.label_studio_url and not _local_file(url, settings):
            raise MediaError(f"cannot fetch {url!r}: set LABEL_STUDIO_URL (and LABEL_STUDIO_API_KEY)")
        return url
    if parsed.scheme in ("http", "https"):
        if parsed.netloc not in settings.media_hosts:
            raise MediaError(
                f"refused media URL {url!r}: host {parsed.netloc!r} is neither LABEL_STUDIO_URL's "
                "nor in FINEPOSE_ALLOWED_HOSTS"
            )
        return url
    raise MediaError(f"refused media URL {url!r}: only Label Studio URLs and http(s) URLs of allowed hosts")


def fetch(url, settings: Settings, task_id: int | None = None) -> Path:
    """A local file holding the media at ``url`` (checked by :func:`check_url`)."""
    from label_studio_sdk._extensions.label_studio_tools.core.utils import io as ls_io

    url = check_url(url, settings)
    local = _local_file(url, settings)
    if local is not None:
        return _checked_size(local, settings)
    if url.startswith(CLOUD_PREFIXES) and task_id is None:
        raise MediaError(f"cannot fetch cloud URI {url!r} without the task id")
    cache = settings.model_dir / "media-cache"
    cache.mkdir(parents=True, exist_ok=True)
    session = _PolicySession(settings.media_hosts, settings.max_image_bytes)
    try:
        token = labelstudio.connection(settings).access_token() if settings.label_studio_url and settings.api_key else None
    except requests.RequestException as exc:
        raise MediaError(f"could not fetch {url}: cannot reach Label Studio at {settings.label_studio_url}: {exc}") from None
    try:
        with ls_io.http_session(session):
            path = ls_io.get_local_path(
                url,
                cache_dir=str(cache),
                hostname=settings.label_studio_url or None,
                access_token=token,  # a PAT's exchanged access token (sent as Bearer) or the legacy key
                task_id=task_id,
            )
    except MediaError:
        raise
    except requests.HTTPError as exc:
        if exc.response.status_code == 401 and token:
            raise labelstudio.connection(settings).refused(401, exc.response.text) from None
        raise MediaError(f"could not fetch {url}: HTTP {exc.response.status_code}") from None
    except (requests.RequestException, OSError, ValueError) as exc:
        raise MediaError(f"could not fetch {url}: {exc}") from None
    return _checked_size(Path(path), settings)


def read_image(path: Path, settings: Settings, keep_grey: bool = False) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array, or (H, W) for a grey or binary image when ``keep_grey``;
    refuses files that are not images or have too many pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.width * image.height > settings.max_image_pixels:
                raise MediaError(
                    f"image {path.name} is {image.width}x{image.height}, over the limit of "
                    f"{settings.max_image_pixels} pixels (FINEPOSE_MAX_IMAGE_PIXELS)"
                )
            if keep_grey and image.mode in ("1", "L"):
                return np.asarray(image.convert("L"))
            return np.asarray(image.convert("RGB"))
    except MediaError:
        raise
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path.name} is not a readable image: {exc}") from None


def read_reference(path: Path, settings: Settings, size: tuple[int, int]) -> np.ndarray:
    """A boolean mask (H, W) = ``size[::-1]`` from a mask image (non-zero = object)."""
    from skimage.transform import resize

    image = read_image(path, settings, keep_grey=True)
    if image.ndim == 2:
        mask = image > 127
    else:  # any channel over half (one comparison per channel: a max over the short last axis is slow)
        mask = (image[..., 0] > 127) | (image[..., 1] > 127) | (image[..., 2] > 127)
    width, height = size
    if mask.shape != (height, width):
        mask = resize(mask.astype(float), (height, width), order=0) > 0.5
    if not mask.any():
        raise MediaError(f"reference mask {path.name} is empty")
    return mask


def _local_files_path(url: str) -> str:
    if not url.startswith("/data/local-files/"):
        return ""
    values = parse_qs(urlparse(url).query, keep_blank_values=True).get("d")
    return values[-1] if values else ""


def _local_file(url: str, settings: Settings) -> Path | None:
    """The file a local-files URL names, when it lies inside an allowed root and exists."""
    relative = posixpath.normpath(_local_files_path(url)).lstrip("/")
    if not relative or relative == ".":
        return None
    for root in settings.local_files_roots:
        candidate = (root / relative).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            return candidate
    return None


def _checked_size(path: Path, settings: Settings) -> Path:
    size = path.stat().st_size
    if size > settings.max_image_bytes:
        raise MediaError(f"{path.name} is {size} bytes, over the limit of {settings.max_image_bytes} (FINEPOSE_MAX_IMAGE_BYTES)")
    return path
