"""Task media (photos, reference masks) from Label Studio URLs, fetched under a strict policy.

Accepted URLs: Label Studio's relative ones (``/data/upload/...``, ``/storage-data/...``,
``/data/local-files/?d=...``), cloud URIs (``s3://``, ``gs://``, ``azure-blob://``, presigned
by Label Studio), and ``http(s)`` URLs whose host is ``LABEL_STUDIO_URL``'s or in
``FINEPOSE_ALLOWED_HOSTS``. Refused before any request is sent: other schemes (``file://``,
...), bare paths, ``..`` anywhere in the path or the query (also percent-encoded), backslashes,
control characters, credentials in the URL, URLs over :data:`MAX_URL_CHARS`.

Downloads: label-studio-sdk's ``get_local_path`` resolves Label Studio URLs and sends the token of
:func:`ls_backend.studio.client.connection` (a PAT's access token or the legacy key) to Label
Studio's host only; its requests go through :class:`~.download.BoundedSession`
(timeouts, size limits, redirects to allowed hosts only) and land in the
:class:`~.media_cache.MediaCache` (atomic, deduplicated, bounded). Local-files URLs are read
straight from disk when their path lies in one of ``FINEPOSE_LOCAL_FILES_ROOTS``.

Errors name the task's field and URL, never the server's paths: :class:`MediaError` (422),
:class:`UpstreamTimeout` (504) naming the host that was too slow.
"""

from __future__ import annotations

import errno
import logging
import posixpath
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import requests

from geometry.masks import binarize, resize_mask
from ls_backend.process import made_once
from ls_backend.studio import client as labelstudio
from ls_backend.studio.download import BoundedSession, Deadline, Limits, host_of
from ls_backend.studio.media_cache import MediaCache
from ls_backend.errors import CredentialsError, MediaError, MediaUnavailable, StorageError, UpstreamTimeout
from ls_backend.settings import Settings

logger = logging.getLogger(__name__)

LS_RELATIVE_PREFIXES = ("/data/upload/", "/data/local-files/", "/storage-data/")
CLOUD_PREFIXES = ("s3://", "gs://", "azure-blob://")
MAX_URL_CHARS = 8192
MIN_PHOTO_SIDE = 8  # px: smaller photos hold no object worth a pose
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PARTS = re.compile(r"[/?&=;#]")


def check_url(url, settings: Settings, field: str = "media URL") -> str:
    """``url`` when the policy allows it; otherwise :class:`MediaError` naming ``field`` and why."""
    if not isinstance(url, str) or not url.strip():
        raise MediaError(f"{field} must be a non-empty URL string, got {_short(url)}")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise MediaError(f"{field} is {len(url)} characters long, over the limit of {MAX_URL_CHARS}")
    if _CONTROL.search(url) or "\\" in url:
        raise MediaError(f"{field} {_short(url)} refused: control characters or backslashes")
    if _has_dot_dot(url):
        raise MediaError(f"{field} {_short(url)} refused: '..' in the path or query")
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        raise MediaError(f"{field} {_short(url)} refused: {exc}") from None
    if url.startswith(CLOUD_PREFIXES) or url.startswith(LS_RELATIVE_PREFIXES):
        if not settings.label_studio_url and not _local_file(url, settings):
            raise MediaError(f"cannot fetch {field} {_short(url)}: set LABEL_STUDIO_URL (and LABEL_STUDIO_API_KEY)")
        return url
    if parsed.scheme in ("http", "https"):
        if parsed.username is not None or parsed.password is not None:
            raise MediaError(f"{field} {_short(url)} refused: credentials in media URLs are not accepted")
        if parsed.netloc.lower() not in {h.lower() for h in settings.media_hosts}:
            raise MediaError(
                f"{field} {_short(url)} refused: host {parsed.netloc!r} is neither LABEL_STUDIO_URL's "
                "nor in FINEPOSE_ALLOWED_HOSTS"
            )
        return url
    raise MediaError(f"{field} {_short(url)} refused: only Label Studio URLs and http(s) URLs of allowed hosts")


def fetch(url, settings: Settings, task_id: int | None = None, deadline: Deadline | None = None,
          cache: MediaCache | None = None, field: str = "media URL") -> Path:
    """A complete local file holding the media at ``url`` (checked by :func:`check_url`)."""
    from label_studio_sdk._extensions.label_studio_tools.core.utils import io as ls_io

    url = check_url(url, settings, field)
    local = _local_file(url, settings)
    if local is not None:
        return _checked_size(local, settings, field)
    if url.startswith(CLOUD_PREFIXES) and task_id is None:
        raise MediaError(f"cannot fetch cloud URI {field} {_short(url)} without the task id")
    deadline = deadline or Deadline.after(settings.fetch_total_s)
    cache = cache or default_cache(settings)
    host = host_of(url) if "://" in url and not url.startswith(CLOUD_PREFIXES) else host_of(settings.label_studio_url)

    def download() -> Path:
        token = _access_token(settings, field, url)
        try:
            folder = cache.temp_dir()
        except OSError as exc:
            raise _storage_error(exc) from None
        session = BoundedSession(Limits.from_settings(settings), deadline)
        try:
            with ls_io.http_session(session):
                path = Path(ls_io.get_local_path(
                    url,
                    cache_dir=str(folder),
                    hostname=settings.label_studio_url or None,
                    access_token=token,  # a PAT's exchanged access token (sent as Bearer) or the legacy key
                    task_id=task_id,
                ))
            if not path.is_relative_to(folder):  # the SDK found Label Studio's own copy on this machine
                return _checked_size(path, settings, field)
            if path.stat().st_size == 0:
                raise MediaError(f"{field} {_short(url)}: {host} sent an empty file")
            return cache.put(MediaCache.key(settings.label_studio_url, url), path)
        except (StorageError, CredentialsError):
            raise
        except MediaError as exc:  # the session's: name the task's field and URL too
            raise type(exc)(f"could not fetch {field} {_short(url)}: {exc}") from None
        except requests.HTTPError as exc:
            if exc.response.status_code == 401 and token:
                raise labelstudio.connection(settings).refused(401, exc.response.text) from None
            unavailable = MediaUnavailable if exc.response.status_code >= 500 else MediaError
            raise unavailable(f"could not fetch {field} {_short(url)}: {host} answered HTTP "
                              f"{exc.response.status_code}") from None
        except (requests.RequestException, OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
                raise _storage_error(exc) from None
            if token is None and ("://" not in url or host == host_of(settings.label_studio_url or "")):
                labelstudio.connection(settings)  # Label Studio's media without its URL or token: 503 naming them
            logger.warning("fetching %s failed: %r", url, exc)
            raise MediaUnavailable(f"could not fetch {field} {_short(url)} from {host}: {type(exc).__name__}") from None
        finally:
            session.close()
            shutil.rmtree(folder, ignore_errors=True)

    path = cache.once(MediaCache.key(settings.label_studio_url, url), download, deadline.left())
    return _checked_size(path, settings, field)


def seed(url, data: bytes, settings: Settings, cache: MediaCache | None = None) -> None:
    """Make ``data``, the media at ``url`` fetched elsewhere (``finepose prelabel``'s fetch
    stage, maybe on another machine), this process's copy: :func:`fetch` then finds it in the
    cache instead of downloading it again. A local file the URL names wins, as in :func:`fetch`."""
    if _local_file(url, settings) is not None:
        return
    cache = cache or default_cache(settings)
    key = MediaCache.key(settings.label_studio_url, url)
    if cache.get(key) is not None:
        return
    folder = None
    try:
        folder = cache.temp_dir()
        cache.put(key, _written(folder / "media", data))
    except OSError as exc:
        raise _storage_error(exc) from None
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def load_image(url, settings: Settings, field: str, task_id=None, deadline=None, cache=None) -> np.ndarray:
    """The photo at ``url`` as (H, W, 3) uint8 RGB; a cached copy found unreadable is dropped."""
    return load_image_file(url, settings, field, task_id, deadline, cache)[1]


def load_image_file(url, settings: Settings, field: str, task_id=None, deadline=None,
                    cache=None) -> tuple[Path, np.ndarray]:
    """:func:`load_image`, with the local file the photo was read from (to serve it again)."""
    path = fetch(url, settings, task_id, deadline, cache, field)
    try:
        image = read_image(path, settings, what=f"{field} {_short(url)}")
    except MediaError:
        (cache or default_cache(settings)).forget(path)
        raise
    height, width = image.shape[:2]
    if min(width, height) < MIN_PHOTO_SIDE:
        raise MediaError(f"{field} {_short(url)} is {width}x{height} px: a photo must be at least "
                         f"{MIN_PHOTO_SIDE}x{MIN_PHOTO_SIDE} px")
    return path, image


def load_reference(url, settings: Settings, field: str, size: tuple[int, int], task_id=None, deadline=None,
                   cache=None) -> np.ndarray:
    """The reference mask at ``url``, (H, W) = ``size[::-1]`` (see :func:`read_reference`)."""
    path = fetch(url, settings, task_id, deadline, cache, field)
    try:
        return read_reference(path, settings, size, what=f"{field} {_short(url)}")
    except MediaError:
        (cache or default_cache(settings)).forget(path)
        raise


def read_image(path: Path, settings: Settings, keep_grey: bool = False, what: str | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array, or (H, W) for a grey or binary image when ``keep_grey``;
    refuses files that are not images or have too many pixels (checked on the header, before
    anything is decoded)."""
    from PIL import Image

    what = what or Path(path).name
    try:
        if Path(path).stat().st_size == 0:
            raise MediaError(f"{what} is an empty file")
        with Image.open(path) as image:
            if image.width * image.height > settings.max_image_pixels:
                raise MediaError(
                    f"{what} is {image.width}x{image.height} px, over the limit of "
                    f"{settings.max_image_pixels} pixels (FINEPOSE_MAX_IMAGE_PIXELS)"
                )
            if keep_grey and image.mode in ("1", "L"):
                return np.asarray(image.convert("L"))
            return np.asarray(image.convert("RGB"))
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:  # the header claims more than PIL will ever open
        size = re.search(r"\((\d+) pixels\)", str(exc))
        raise MediaError(f"{what} claims {size.group(1) if size else 'too many'} pixels, over the limit of "
                         f"{settings.max_image_pixels} (FINEPOSE_MAX_IMAGE_PIXELS)") from None
    except FileNotFoundError:
        raise MediaError(f"{what} is no longer there") from None
    except Exception as exc:  # PIL's decoders raise OSError, ValueError, SyntaxError, struct.error, ...
        logger.info("%s (%s) is not readable: %r", what, path, exc)
        reason = str(exc).replace(str(path), "").strip(" :'") or type(exc).__name__
        if "cannot identify image file" in reason:
            reason = "not an image format Pillow knows"
        raise MediaError(f"{what} is not a readable image ({reason[:120]})") from None


def read_reference(path: Path, settings: Settings, size: tuple[int, int], what: str | None = None) -> np.ndarray:
    """A boolean mask (H, W) = ``size[::-1]`` from a mask image (non-zero = object), resized
    by finepose's one mask resizer (:func:`geometry.masks.resize_mask`) when its size differs."""
    what = what or Path(path).name
    image = read_image(path, settings, keep_grey=True, what=what)
    mask = binarize(image)  # finepose's one rule, as the CLI reads masks
    width, height = size
    if mask.shape != (height, width):
        mask = resize_mask(mask, width, height)
    if not mask.any():
        raise MediaError(f"reference mask {what} is empty (no pixel over half brightness)")
    return mask


_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM}


def _storage_error(exc: OSError) -> StorageError:
    logger.error("media cache write failed: %r", exc)
    return StorageError(f"the media cache cannot be written ({exc.strerror or type(exc).__name__}): free space in "
                        "MODEL_DIR or lower FINEPOSE_MEDIA_CACHE_BYTES")


def _access_token(settings: Settings, field: str, url: str) -> str | None:
    """The token media downloads send to Label Studio's host: a Personal Access Token's current
    access token or the legacy key (:func:`ls_backend.studio.client.connection`); None without
    Label Studio settings."""
    if not (settings.label_studio_url and settings.api_key):
        return None
    if "://" in url and not url.startswith(CLOUD_PREFIXES) and host_of(url).lower() != host_of(settings.label_studio_url).lower():
        return None  # another host never gets it (the SDK checks too)
    try:
        return labelstudio.connection(settings).access_token()
    except requests.RequestException as exc:
        raise MediaError(f"could not fetch {field} {_short(url)}: Label Studio at {host_of(settings.label_studio_url)} "
                         f"is unreachable ({type(exc).__name__})") from None


def _has_dot_dot(url: str) -> bool:
    """Whether ``..`` is a segment of the path or of a query value, after up to three rounds of
    percent-decoding (``%2e%2e``, ``%252e%252e``)."""
    text = url
    for _ in range(4):
        if ".." in _PARTS.split(text):
            return True
        decoded = unquote(text)
        if decoded == text:
            return False
        text = decoded
    return True  # still encoded after three rounds: refuse rather than guess


def _short(url) -> str:
    text = repr(url)
    return text if len(text) <= 120 else text[:117] + "...'"


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


def _checked_size(path: Path, settings: Settings, field: str = "media") -> Path:
    size = path.stat().st_size
    if size > settings.max_image_bytes:
        raise MediaError(f"{field} is {size} bytes, over the limit of {settings.max_image_bytes} (FINEPOSE_MAX_IMAGE_BYTES)")
    return path


@made_once
def cache_in(folder: Path, max_bytes: int) -> MediaCache:
    """The process's one :class:`MediaCache` of ``folder`` and bound (downloads of one URL are
    shared only within one cache object)."""
    return MediaCache(folder, max_bytes)


def default_cache(settings: Settings) -> MediaCache:
    """``MODEL_DIR/media-cache`` (the backend passes its checked work folder's instead)."""
    return cache_in(Path(settings.model_dir) / "media-cache", settings.media_cache_bytes)
