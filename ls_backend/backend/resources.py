"""Heavy state loaded once per process: settings, the model registry with its meshes and
ray-casting scenes, the segmentation models and the Label Studio client.

Everything is built lazily on first use and then shared by all requests of the process
(gunicorn workers each hold their own), so ``/setup`` never waits on it.
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property

from ls_backend import __version__
from ls_backend.settings import Settings
from ls_backend.errors import ConfigError
from ls_backend.registry import Registry

logger = logging.getLogger(__name__)


class Resources:
    _shared: "Resources | None" = None
    _shared_lock = threading.Lock()

    def __init__(self, settings: Settings):
        self.settings = settings

    @classmethod
    def shared(cls) -> "Resources":
        """The process-wide instance, configured from the environment on first call."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls(Settings.from_env())
            return cls._shared

    @cached_property
    def registry(self) -> Registry | None:
        if self.settings.registry is None:
            return None
        return Registry.load(self.settings.registry, max_mesh_bytes=self.settings.max_mesh_bytes)

    def require_registry(self) -> Registry:
        if self.registry is None:
            raise ConfigError("no model registry configured: set FINEPOSE_REGISTRY to a JSON file of model id -> mesh")
        return self.registry

    def warm_up(self) -> None:
        """Load every registry mesh and build its ray-casting scene now."""
        registry = self.require_registry()
        for model_id in registry.entries:
            registry.renderer(model_id)
        logger.info("loaded %d meshes from %s", len(registry.entries), registry.source)

    @cached_property
    def model_version(self) -> str:
        """Stable across processes for the same code, method, resolution and registry: Label
        Studio skips tasks that already hold a prediction of this version."""
        registry = self.registry.version_key() if self.registry is not None else "noreg"
        return f"finepose-{__version__}-{self.settings.method}-w{self.settings.work_width}-{registry}"

    def segmenter(self):
        """The process-wide Mask R-CNN + DeepLabV3 segmenter (weights loaded on first use)."""
        from ls_backend.segmentation.models import get_segmenter
        from ls_backend.segmentation.weights import WeightsConfig

        return get_segmenter(WeightsConfig.from_settings(self.settings))

    def client(self):
        """A label-studio-sdk client for ``LABEL_STUDIO_URL`` with ``LABEL_STUDIO_API_KEY``
        (a Personal Access Token or a legacy token, see :mod:`ls_backend.labelstudio`)."""
        from ls_backend.labelstudio import connection

        return connection(self.settings).sdk()
