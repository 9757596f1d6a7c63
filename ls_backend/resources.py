"""Heavy state loaded once per process: settings, the model registry with its meshes and
ray-casting scenes, the segmentation models and the Label Studio client.

Everything is built lazily on first use and then shared by all requests of the process
(gunicorn workers each hold their own), so ``/setup`` never waits on it.
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from pathlib import Path

from ls_backend import __version__
from ls_backend.process import KeyedLocks, Recent, SharedRuns, made_once
from ls_backend.settings import Settings
from ls_backend.errors import ConfigError
from ls_backend.registry import Registry

logger = logging.getLogger(__name__)

#: How long a prediction answers repeated requests for the same task and inputs (s).
SHARED_PREDICTION_S = 600.0


class Resources:
    def __init__(self, settings: Settings):
        self.settings = settings
        #: Refinements running at once in this process: at most ``FINEPOSE_THREADS``.
        self.slots = threading.BoundedSemaphore(settings.threads)
        #: Predictions by request, shared by concurrent and repeated calls for
        #: :data:`SHARED_PREDICTION_S` seconds (:func:`ls_backend.pipeline.predict.predict_shared`).
        self.shared_predictions = SharedRuns(ttl=SHARED_PREDICTION_S, size=512)
        #: Annotation id -> the digest of the result finepose wrote into it (its own correction
        #: comes back as ANNOTATION_UPDATED: :meth:`FineposeModel.fit` skips it).
        self.corrected_annotations = Recent(size=4096)
        #: One writer of a task's predictions at a time (the webhook replaces them).
        self.task_predictions = KeyedLocks()
        #: Whether every registry mesh is loaded (:meth:`warm_up`).
        self.warm = False

    @staticmethod
    def shared() -> "Resources":
        """The process-wide instance, configured from the environment on first call."""
        return _shared_resources()

    @cached_property
    def _work(self) -> tuple:
        from ls_backend.studio.media_cache import work_dir

        return work_dir(self.settings.model_dir)

    @property
    def work_dir(self) -> Path:
        """Where the backend writes: ``MODEL_DIR``, or a temporary folder when that is not
        writable (:func:`ls_backend.studio.media_cache.work_dir`)."""
        return self._work[0]

    @property
    def work_dir_persistent(self) -> bool:
        return self._work[1]

    def refinement_slot(self) -> threading.BoundedSemaphore:
        """One of the process's ``FINEPOSE_THREADS`` refinement slots (``with``: wait for one):
        bounds the CPU and memory of concurrent refinements; media are fetched outside them."""
        return self.slots

    @cached_property
    def media_cache(self):
        """The process's media cache (``<work dir>/media-cache``, bounded)."""
        from ls_backend.studio.media import cache_in

        return cache_in(self.work_dir / "media-cache", self.settings.media_cache_bytes)

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
        """Load every registry mesh and build its ray-casting scene now (once: after a success,
        a call returns at once; after a failure, the next call tries again)."""
        if self.warm:
            return
        registry = self.require_registry()
        for model_id in registry.entries:
            registry.renderer(model_id)
        self.warm = True
        logger.info("loaded %d meshes from %s", len(registry.entries), registry.source)

    @cached_property
    def model_version(self) -> str:
        """Stable across processes for the same code, method and work width: Label Studio skips
        tasks that already hold a prediction of this version. The registry is not part of it,
        so adding or removing a model re-predicts no other model's tasks (a changed mesh or
        frame is ``finepose prelabel``'s to notice: :meth:`Registry.fingerprint`)."""
        return f"finepose-{__version__}-{self.settings.method}-w{self.settings.work_width}"

    def segmenter(self):
        """The process-wide Mask R-CNN + DeepLabV3 segmenter (weights loaded on first use)."""
        from ls_backend.segmentation.models import get_segmenter
        from ls_backend.segmentation.weights import WeightsConfig

        return get_segmenter(WeightsConfig.from_settings(self.settings))

    def client(self):
        """A label-studio-sdk client for ``LABEL_STUDIO_URL`` with ``LABEL_STUDIO_API_KEY``
        (a Personal Access Token or a legacy token, see :mod:`ls_backend.studio.client`)."""
        from ls_backend.studio.client import connection

        return connection(self.settings).sdk()


@made_once
def _shared_resources() -> Resources:
    return Resources(Settings.from_env())
