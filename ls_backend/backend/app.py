"""The Label Studio ML backend protocol (as label-studio-ml 2.x serves it), with Flask 3.

Endpoints: ``GET /`` and ``/health``, ``POST /setup`` -> ``{"model_version"}``, ``POST /predict``
``{tasks, label_config, project, params: {context}}`` -> ``{"results": [...], "model_version"}``,
``POST /webhook`` (annotation events) and ``GET /metrics``. With ``BASIC_AUTH_USER`` and
``BASIC_AUTH_PASS`` set, all but ``/health`` require them. Bad input answers a 4xx JSON
``{"error": ...}`` naming what is wrong; the server keeps serving.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import Counter

from flask import Flask, Response, jsonify, request

from ls_backend.backend.model import FineposeModel
from ls_backend.backend.resources import Resources
from ls_backend.editor import create_editor_blueprint
from ls_backend.errors import BadRequest, TaskError, http_status

logger = logging.getLogger(__name__)

OPEN_PATHS = ("/health",)
OPEN_PREFIXES = ("/editor/",)  # the pose editor checks its own signed links instead


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


def create_app(resources: Resources | None = None) -> Flask:
    resources = resources or Resources.shared()
    app = Flask("finepose")
    metrics = Metrics()
    auth = resources.settings.basic_auth

    @app.before_request
    def check_auth():
        if auth is None or request.path in OPEN_PATHS or request.path.startswith(OPEN_PREFIXES):
            return None
        given = request.authorization
        if given is None or not (
            hmac.compare_digest(given.username or "", auth[0]) and hmac.compare_digest(given.password or "", auth[1])
        ):
            return Response("authentication required\n", 401, {"WWW-Authenticate": 'Basic realm="finepose"'})
        return None

    @app.get("/")
    @app.get("/health")
    def health():
        registry = resources.registry
        return jsonify(
            status="UP",
            model_class="FineposeModel",
            model_version=resources.model_version,
            models=len(registry.entries) if registry else 0,
            model_dir=str(resources.settings.model_dir),
        )

    @app.post("/setup")
    def setup():
        data = _json()
        model = FineposeModel(project_id=data.get("project"), label_config=data.get("schema"), resources=resources)
        model.setup()
        return jsonify(model_version=model.model_version)

    @app.post("/predict")
    def predict():
        start, ok = time.perf_counter(), False
        try:
            data = _json()
            tasks = data.get("tasks")
            if not isinstance(tasks, list) or not tasks:
                raise TaskError("'tasks' must be a non-empty list of tasks")
            params = data.get("params") or {}
            context = params.get("context") if isinstance(params, dict) else None
            model = FineposeModel(data.get("project"), data.get("label_config"), resources)
            response = model.predict(tasks, context=context)
            ok = True
            return jsonify(results=response["predictions"], model_version=response["model_version"])
        finally:
            metrics.record("predict", time.perf_counter() - start, ok)

    @app.post("/webhook")
    def webhook():
        start, ok = time.perf_counter(), False
        try:
            data = _json()
            event = data.pop("action", None)
            if not isinstance(event, str):
                raise TaskError("webhook body must carry an 'action' (the event name)")
            project = data.get("project") or {}
            model = FineposeModel(project.get("id"), project.get("label_config"), resources)
            result = model.fit(event, data)
            ok = True
            return jsonify(result), 201
        finally:
            metrics.record("webhook", time.perf_counter() - start, ok)

    @app.get("/metrics")
    def metrics_view():
        return jsonify(metrics.snapshot())

    app.register_blueprint(create_editor_blueprint(resources))
    app.register_error_handler(Exception, _error)
    return app


def _json() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _error(exc):
    """finepose's errors answer their own status (:func:`ls_backend.errors.http_status`), Flask's
    HTTP exceptions theirs, another ValueError 400, anything else 500 (logged with its traceback)."""
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        return jsonify(error=exc.description), exc.code
    status = http_status(exc)
    if status is None and isinstance(exc, ValueError):  # bad input that no finepose check named
        status = 400
    if status is not None:
        logger.warning("%s %s -> %d: %s", request.method, request.path, status, exc)
        return jsonify(error=str(exc), type=type(exc).__name__), status
    logger.exception("%s %s failed", request.method, request.path)
    return jsonify(error=f"internal error: {exc}", type=type(exc).__name__), 500
