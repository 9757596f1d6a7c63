"""The Label Studio ML backend protocol (as label-studio-ml 2.x serves it), as a Flask blueprint.

Endpoints: ``GET /`` and ``/health``, ``POST /setup`` -> ``{"model_version"}``, ``POST /predict``
``{tasks, label_config, project, params: {context}}`` -> ``{"results": [...], "model_version"}``,
``POST /webhook`` (annotation events) and ``GET /metrics``. The WSGI app that mounts this
blueprint beside the pose editor's (:mod:`ls_backend.server.app`) holds basic auth, the body
size limit and the error handler: bad input answers a 4xx JSON ``{"error": ...}`` naming the
field and the reason (bodies are checked by :mod:`ls_backend.studio.validation`). At most
``FINEPOSE_THREADS`` tasks of a process refine at once
(:meth:`~ls_backend.resources.Resources.refinement_slot`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Callable

from flask import Blueprint, jsonify, request

from geometry.errors import GeometryError
from ls_backend.backend.model import FineposeModel
from ls_backend.errors import BadRequest, ConfigError, FineposeError
from ls_backend.resources import Resources
from ls_backend.studio import validation


class Metrics:
    """Request counters and timings for ``/metrics`` (per process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = Counter()
        self.seconds = Counter()

    def record(self, name: str, seconds: float, ok: bool) -> None:
        with self._lock:
            self.counts[f"{name}_requests"] += 1
            self.counts[f"{name}_errors"] += 0 if ok else 1
            self.seconds[name] += seconds

    def snapshot(self) -> dict:
        with self._lock:
            out = dict(self.counts)
            for name, total in self.seconds.items():
                out[f"{name}_seconds_mean"] = total / max(1, self.counts[f"{name}_requests"])
            return out


def create_backend_blueprint(resources: Resources, on_tasks: Callable | None = None) -> Blueprint:
    """The ML backend's routes for ``resources``; ``on_tasks(tasks, project)`` is called with
    every ``/predict`` request's tasks (the composition root renews the pose editor's links
    there: the backend itself knows nothing of the editor)."""
    bp = Blueprint("backend", __name__)
    metrics = Metrics()

    def model(project, label_config) -> FineposeModel:
        return FineposeModel(project, label_config, resources, on_tasks=on_tasks)

    @bp.get("/")
    @bp.get("/health")
    def health():
        """200 ``UP`` when predictions can be served; 503 naming what is missing otherwise (no
        registry, one that cannot be loaded, or with ``FINEPOSE_PRELOAD_MESHES`` a mesh that
        cannot), which Label Studio shows when connecting."""
        try:
            registry = resources.require_registry()
            if resources.settings.preload_meshes:
                resources.warm_up()
        except (FineposeError, GeometryError) as exc:
            raise ConfigError(f"not ready: {exc}") from None
        return jsonify(
            status="UP",
            model_class="FineposeModel",
            model_version=resources.model_version,
            models=len(registry.entries) if registry else 0,
            media_cache="MODEL_DIR" if resources.work_dir_persistent else "temporary",
        )

    @bp.post("/setup")
    def setup():
        project, schema = validation.setup_body(_json())
        backend = model(project, schema)
        backend.setup()
        return jsonify(model_version=backend.model_version)

    @bp.post("/predict")
    def predict():
        start, ok = time.perf_counter(), False
        try:
            data = _json()
            tasks, label_config, regions = validation.predict_body(data)
            response = model(data.get("project"), label_config).predict(
                tasks, context={"result": regions} if regions else None)
            ok = True
            return jsonify(results=response["predictions"], model_version=response["model_version"])
        finally:
            metrics.record("predict", time.perf_counter() - start, ok)

    @bp.post("/webhook")
    def webhook():
        start, ok = time.perf_counter(), False
        try:
            data = _json()
            event = validation.webhook_event(data)
            project = data.get("project") if isinstance(data.get("project"), dict) else {}
            result = model(project.get("id"), project.get("label_config")).fit(event, data)
            ok = True
            return jsonify(result), 201
        finally:
            metrics.record("webhook", time.perf_counter() - start, ok)

    @bp.get("/metrics")
    def metrics_view():
        return jsonify(metrics.snapshot())

    return bp


def _json() -> dict:
    """The request's JSON object (:func:`ls_backend.studio.validation.parse_json`); 415 for
    another content type."""
    if not request.is_json:
        raise UnsupportedMediaType(f"send the body as JSON with Content-Type: application/json "
                                   f"(got {request.mimetype or 'none'})")
    return validation.parse_json(request.get_data(cache=False))


class UnsupportedMediaType(BadRequest):
    status = 415
