"""The Label Studio ML backend protocol (as label-studio-ml 2.x serves it), with Flask 3.

Endpoints: ``GET /`` and ``/health``, ``POST /setup`` -> ``{"model_version"}``, ``POST /predict``
``{tasks, label_config, project, params: {context}}`` -> ``{"results": [...], "model_version"}``,
``POST /webhook`` (annotation events) and ``GET /metrics``. With ``BASIC_AUTH_USER`` and
``BASIC_AUTH_PASS`` set, all but ``/health`` require them.

Bad input answers a 4xx JSON ``{"error": ...}`` naming the field and the reason (bodies are
checked by :mod:`ls_backend.backend.validation`; over ``FINEPOSE_MAX_REQUEST_BYTES``: 413);
answers never carry the server's filesystem paths (the log has the full detail) and an
unexpected error answers 500 without its message. At most ``FINEPOSE_THREADS`` tasks of a
process refine at once (:meth:`~ls_backend.backend.resources.Resources.refinement_slot`).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from flask import Flask, Response, jsonify, request

from ls_backend.backend.model import FineposeModel
from ls_backend.backend.resources import Resources
from ls_backend.backend import validation
from ls_backend.editor import create_editor_blueprint
from ls_backend.errors import BadRequest, http_status

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
    settings = resources.settings
    app = Flask("finepose")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    metrics = Metrics()
    auth = settings.basic_auth
    scrub = _path_scrubber(resources)

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
            media_cache="MODEL_DIR" if resources.work_dir_persistent else "temporary",
        )

    @app.post("/setup")
    def setup():
        project, schema = validation.setup_body(_json())
        model = FineposeModel(project_id=project, label_config=schema, resources=resources)
        model.setup()
        return jsonify(model_version=model.model_version)

    @app.post("/predict")
    def predict():
        start, ok = time.perf_counter(), False
        try:
            data = _json()
            tasks, label_config, regions = validation.predict_body(data)
            model = FineposeModel(data.get("project"), label_config, resources)
            response = model.predict(tasks, context={"result": regions} if regions else None)
            ok = True
            return jsonify(results=response["predictions"], model_version=response["model_version"])
        finally:
            metrics.record("predict", time.perf_counter() - start, ok)

    @app.post("/webhook")
    def webhook():
        start, ok = time.perf_counter(), False
        try:
            data = _json()
            event = validation.webhook_event(data)
            project = data.get("project") if isinstance(data.get("project"), dict) else {}
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
    app.register_error_handler(Exception, error_handler(resources))
    return app


def error_handler(resources: Resources):
    """The app's handler of every exception: finepose's errors answer their own status
    (:func:`ls_backend.errors.http_status`), Flask's HTTP exceptions theirs, another
    ValueError 400, anything else 500 (logged with its traceback, answered without its
    message); messages lose the server's paths (:func:`_path_scrubber`)."""
    settings = resources.settings
    scrub = _path_scrubber(resources)

    def error(exc):
        """finepose's errors answer their own status (:func:`ls_backend.errors.http_status`),
        Flask's HTTP exceptions theirs, another ValueError 400, anything else 500 (logged with
        its traceback, answered without its message)."""
        from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

        if isinstance(exc, RequestEntityTooLarge):
            return jsonify(error=f"request body over {settings.max_request_bytes} bytes (FINEPOSE_MAX_REQUEST_BYTES)",
                           type="RequestEntityTooLarge"), 413
        if isinstance(exc, HTTPException):
            return jsonify(error=exc.description), exc.code
        status = http_status(exc)
        if status is None and isinstance(exc, (ValueError, RecursionError)):  # bad input no finepose check named
            status = 400
        if status is not None:
            logger.warning("%s %s -> %d: %s", request.method, request.path, status, exc)
            return jsonify(error=scrub(str(exc)), type=type(exc).__name__), status
        logger.exception("%s %s failed", request.method, request.path)
        return jsonify(error="internal error (the backend's log has the details)", type=type(exc).__name__), 500
    return error


def _json() -> dict:
    """The request's JSON object (:func:`ls_backend.backend.validation.parse_json`); 415 for
    another content type."""
    if not request.is_json:
        raise UnsupportedMediaType(f"send the body as JSON with Content-Type: application/json "
                                   f"(got {request.mimetype or 'none'})")
    return validation.parse_json(request.get_data(cache=False))


class UnsupportedMediaType(BadRequest):
    status = 415


def _path_scrubber(resources: Resources):
    """A function replacing the server's own paths in a message by their last part (a file name
    stays, the folders above it go): ``MODEL_DIR``, the work folder, the registry's folder, the
    local-files roots, the home, temporary, current and Python folders."""
    settings = resources.settings
    prefixes = {Path.home(), Path(tempfile.gettempdir()), Path.cwd(), Path(sys.prefix), Path(settings.model_dir),
                *settings.local_files_roots}
    if settings.registry is not None:
        prefixes.add(Path(settings.registry).parent)
    roots = set()
    for prefix in prefixes:
        for form in (prefix, prefix.absolute(), prefix.resolve()):
            text = str(form).rstrip(os.sep)
            if len(text) > 1:
                roots.add(text)
    if not roots:
        return lambda message: message
    pattern = re.compile("(?:" + "|".join(re.escape(r) for r in sorted(roots, key=len, reverse=True)) + r")(?:/[^\s'\",;()]*)?")

    def scrub(message: str) -> str:
        return pattern.sub(lambda m: Path(m.group(0)).name or "<server path>", message)

    return scrub
