"""Backend settings, read from the environment the way Label Studio ML backends are configured.

Label Studio's own names:

- ``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``: where task media and the API live.
- ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (or ``LOCAL_FILES_DOCUMENT_ROOT``): the folder Label
  Studio serves ``/data/local-files/?d=`` from, where it does (the tools' ``--media-root``
  route: files there are given to a project as Local Files storage instead of uploaded).
- ``BASIC_AUTH_USER`` / ``BASIC_AUTH_PASS``: when both are set, every endpoint but ``/health``
  asks for them; one without the other is refused (the backend does not start).
- ``MODEL_DIR``: a writable folder (download cache, smart-keypoint memory); when it is not
  writable the backend uses a temporary folder instead and logs a warning saying so.
- ``LOG_LEVEL``: ``DEBUG``, ``INFO`` (default), ...

finepose's own:

- ``FINEPOSE_REGISTRY``: JSON file ``{"<model id>": {"mesh": path, "frame": name, ...}}``.
- ``FINEPOSE_ALLOWED_HOSTS``: comma-separated extra hosts media may be fetched from (besides
  ``LABEL_STUDIO_URL``'s); ``FINEPOSE_LOCAL_FILES_ROOTS``: comma-separated folders that
  ``/data/local-files/?d=`` URLs may be read from directly (otherwise they are downloaded from
  Label Studio).
- ``FINEPOSE_MAX_IMAGE_BYTES`` (default 25 MB), ``FINEPOSE_MAX_IMAGE_PIXELS`` (default 40 M),
  ``FINEPOSE_MAX_MESH_BYTES`` (default 200 MB).
- ``FINEPOSE_FETCH_CONNECT_S`` (5), ``FINEPOSE_FETCH_READ_S`` (10), ``FINEPOSE_FETCH_TOTAL_S`` (20):
  seconds a media download may take to connect, to send the next byte, and in all (all media
  of one task). Label Studio API calls have their own timeout (:mod:`ls_backend.studio.client`).
- ``FINEPOSE_MEDIA_CACHE_BYTES`` (default 1 GB): the media cache's bound (least recently used
  files are removed first).
- ``FINEPOSE_MAX_REQUEST_BYTES`` (default 32 MB): larger request bodies answer 413.
- ``FINEPOSE_THREADS`` (default 8): requests refined at once per worker process (``finepose
  serve --threads`` sets it); further requests wait for a slot while ``/health`` stays free.
- ``FINEPOSE_SMART_MEMORY_S`` (default 3600): smart-keypoint clicks of a task are forgotten
  after this many seconds without a new click (and their files removed).
- ``FINEPOSE_EDITOR_URL``: the backend's URL as annotators' browsers reach it, for the pose
  editor's links (default: the URL a request came in on); ``FINEPOSE_EDITOR_SECRET``: the key
  editor links are signed with (default: derived from ``LABEL_STUDIO_API_KEY``);
  ``FINEPOSE_EDITOR_LINK_S`` (default 14 days): how long a link stays valid.
- ``FINEPOSE_METHOD`` (``fast`` or ``paper``), ``FINEPOSE_WORK_WIDTH``: refinement runs on the
  reference resized to this width in px (default 300, as the release); results are given at
  the image's own size.
- ``FINEPOSE_TIMEOUT`` (default 300): seconds a gunicorn worker may spend on one request
  (``finepose serve``); ``FINEPOSE_PRELOAD_MESHES=1``: load every registry mesh when a worker
  starts.
- ``FINEPOSE_SHADED`` (``0``/``off`` turns shaded overlays off) and
  ``FINEPOSE_SHADED_PROBE_TIMEOUT`` (default 180 s): the Open3D OffscreenRenderer probe.
- ``FINEPOSE_MASKRCNN_WEIGHTS``, ``FINEPOSE_DEEPLAB_WEIGHTS``: the segmentation models' own
  weight files (else torch's cache, ``$TORCH_HOME/hub/checkpoints``, read by torch);
  ``FINEPOSE_VERIFY_WEIGHTS=0`` skips the cache files' hash check; ``FINEPOSE_DEVICE`` the
  torch device (default CUDA when torch sees one, else CPU).

This module is the only place finepose reads its environment; everything else takes a
:class:`Settings` (or values from it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ls_backend.errors import ConfigError

MB = 1 << 20


def _document_root(env) -> Path | None:
    text = env.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT") or env.get("LOCAL_FILES_DOCUMENT_ROOT")
    return Path(text).resolve() if text else None


def _int(env, name: str, default: int) -> int:
    text = env.get(name)
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _switch(env, name: str, default: bool) -> bool:
    """An on/off variable: 1/on/true/yes or 0/off/false/no (case-insensitive); unset: ``default``."""
    text = env.get(name, "").strip().lower()
    if text == "":
        return default
    if text in ("1", "on", "true", "yes"):
        return True
    if text in ("0", "off", "false", "no"):
        return False
    raise ConfigError(f"{name} must be 1/on/true/yes or 0/off/false/no, got {text!r}")


def _float(env, name: str, default: float) -> float:
    text = env.get(name)
    if text in (None, ""):
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {text!r}") from None
    if not 0 < value < 86400:
        raise ConfigError(f"{name} must be between 0 and 86400 seconds, got {text}")
    return value


def _basic_auth(env) -> tuple[str, str] | None:
    """Both of ``BASIC_AUTH_USER`` and ``BASIC_AUTH_PASS``, or neither: one alone would leave the
    backend open while its operator believes it is protected."""
    user, password = env.get("BASIC_AUTH_USER", ""), env.get("BASIC_AUTH_PASS", "")
    if bool(user) != bool(password):
        missing = "BASIC_AUTH_PASS" if user else "BASIC_AUTH_USER"
        given = "BASIC_AUTH_USER" if user else "BASIC_AUTH_PASS"
        raise ConfigError(f"{given} is set but {missing} is not: set both to require basic auth, or neither")
    return (user, password) if user else None


def _list(env, name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    label_studio_url: str = ""
    api_key: str = ""
    basic_auth: tuple[str, str] | None = None
    model_dir: Path = Path("finepose-model-dir")
    log_level: str = "INFO"
    registry: Path | None = None
    allowed_hosts: tuple[str, ...] = ()
    local_files_roots: tuple[Path, ...] = ()
    local_files_document_root: Path | None = None
    max_image_bytes: int = 25 * MB
    max_image_pixels: int = 40_000_000
    max_mesh_bytes: int = 200 * MB
    method: str = "fast"
    work_width: int = 300
    smart_memory_seconds: int = 3600
    timeout_s: int = 300
    preload_meshes: bool = False
    shaded: bool = True
    shaded_probe_timeout_s: int = 180
    maskrcnn_weights: Path | None = None
    deeplab_weights: Path | None = None
    verify_weights: bool = True
    device: str = ""
    editor_url: str = ""
    editor_secret: str = ""
    editor_link_seconds: int = 14 * 24 * 3600
    fetch_connect_s: float = 5.0
    fetch_read_s: float = 10.0
    fetch_total_s: float = 20.0
    media_cache_bytes: int = 1024 * MB
    max_request_bytes: int = 32 * MB
    threads: int = 8

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        env = os.environ if env is None else env
        url = env.get("LABEL_STUDIO_URL", "").rstrip("/")
        if url and urlparse(url).scheme not in ("http", "https"):
            raise ConfigError(f"LABEL_STUDIO_URL must start with http:// or https://, got {url!r}")
        method = env.get("FINEPOSE_METHOD", cls.method)
        if method not in ("fast", "paper"):
            raise ConfigError(f"FINEPOSE_METHOD must be 'fast' or 'paper', got {method!r}")
        registry = env.get("FINEPOSE_REGISTRY")
        editor_url = env.get("FINEPOSE_EDITOR_URL", "").rstrip("/")
        if editor_url and urlparse(editor_url).scheme not in ("http", "https"):
            raise ConfigError(f"FINEPOSE_EDITOR_URL must start with http:// or https://, got {editor_url!r}")
        return cls(
            label_studio_url=url,
            api_key=env.get("LABEL_STUDIO_API_KEY", ""),
            basic_auth=_basic_auth(env),
            model_dir=Path(env.get("MODEL_DIR", cls.model_dir)),
            log_level=env.get("LOG_LEVEL", cls.log_level).upper(),
            registry=Path(registry) if registry else None,
            allowed_hosts=_list(env, "FINEPOSE_ALLOWED_HOSTS"),
            local_files_roots=tuple(Path(p).resolve() for p in _list(env, "FINEPOSE_LOCAL_FILES_ROOTS")),
            local_files_document_root=_document_root(env),
            max_image_bytes=_int(env, "FINEPOSE_MAX_IMAGE_BYTES", cls.max_image_bytes),
            max_image_pixels=_int(env, "FINEPOSE_MAX_IMAGE_PIXELS", cls.max_image_pixels),
            max_mesh_bytes=_int(env, "FINEPOSE_MAX_MESH_BYTES", cls.max_mesh_bytes),
            method=method,
            work_width=_int(env, "FINEPOSE_WORK_WIDTH", cls.work_width),
            smart_memory_seconds=_int(env, "FINEPOSE_SMART_MEMORY_S", cls.smart_memory_seconds),
            timeout_s=_int(env, "FINEPOSE_TIMEOUT", cls.timeout_s),
            preload_meshes=_switch(env, "FINEPOSE_PRELOAD_MESHES", cls.preload_meshes),
            shaded=_switch(env, "FINEPOSE_SHADED", cls.shaded),
            shaded_probe_timeout_s=_int(env, "FINEPOSE_SHADED_PROBE_TIMEOUT", cls.shaded_probe_timeout_s),
            maskrcnn_weights=Path(env["FINEPOSE_MASKRCNN_WEIGHTS"]).expanduser() if env.get("FINEPOSE_MASKRCNN_WEIGHTS") else None,
            deeplab_weights=Path(env["FINEPOSE_DEEPLAB_WEIGHTS"]).expanduser() if env.get("FINEPOSE_DEEPLAB_WEIGHTS") else None,
            verify_weights=_switch(env, "FINEPOSE_VERIFY_WEIGHTS", cls.verify_weights),
            device=env.get("FINEPOSE_DEVICE", "").strip(),
            editor_url=editor_url,
            editor_secret=env.get("FINEPOSE_EDITOR_SECRET", ""),
            editor_link_seconds=_int(env, "FINEPOSE_EDITOR_LINK_S", cls.editor_link_seconds),
            fetch_connect_s=_float(env, "FINEPOSE_FETCH_CONNECT_S", cls.fetch_connect_s),
            fetch_read_s=_float(env, "FINEPOSE_FETCH_READ_S", cls.fetch_read_s),
            fetch_total_s=_float(env, "FINEPOSE_FETCH_TOTAL_S", cls.fetch_total_s),
            media_cache_bytes=_int(env, "FINEPOSE_MEDIA_CACHE_BYTES", cls.media_cache_bytes),
            max_request_bytes=_int(env, "FINEPOSE_MAX_REQUEST_BYTES", cls.max_request_bytes),
            threads=_int(env, "FINEPOSE_THREADS", cls.threads),
        )

    @property
    def media_hosts(self) -> set[str]:
        """Hosts (``host[:port]``) media URLs may point at."""
        hosts = set(self.allowed_hosts)
        if self.label_studio_url:
            hosts.add(urlparse(self.label_studio_url).netloc)
        return hosts
