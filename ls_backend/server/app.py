"""finepose's WSGI app: the ML backend and the pose editor mounted side by side.

This is the one place that knows both: the backend's ``/predict`` renews the editor's links
through the hook given here, and both share one :class:`~ls_backend.resources.Resources`, one
basic-auth rule and one error handler. With ``BASIC_AUTH_USER`` and ``BASIC_AUTH_PASS`` set,
all but ``/health`` and the editor (which checks its own signed links) require them.

Errors: finepose's own answer their status (:func:`ls_backend.errors.http_status`), Flask's
HTTP exceptions theirs, another ValueError 400, anything else 500 (logged with its
traceback, answered without its message). Answers never carry the server's filesystem
paths (:mod:`ls_backend.redact`); over ``FINEPOSE_MAX_REQUEST_BYTES``: 413.
"""

from __future__ import annotations

import hmac
import logging

from flask import Flask, Response, jsonify, request

from ls_backend.backend.app import create_backend_blueprint
from ls_backend.editor import create_editor_blueprint, renew_links_later
from ls_backend.errors import http_status
from ls_backend.redact import scrubber
from ls_backend.resources import Resources

logger = logging.getLogger(__name__)

OPEN_PATHS = ("/health",)
OPEN_PREFIXES = ("/editor/",)  # the pose editor checks its own signed links instead


def create_app(resources: Resources | None = None, editor_source=None) -> Flask:
    """The app for ``resources`` (default: the process's, from the environment);
    ``editor_source`` replaces the editor's Label Studio source (tests)."""
    resources = resources or Resources.shared()
    settings = resources.settings
    app = Flask("finepose")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    auth = settings.basic_auth

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

    def on_tasks(tasks, project):
        renew_links_later(tasks, project, resources)

    app.register_blueprint(create_backend_blueprint(resources, on_tasks=on_tasks))
    app.register_blueprint(create_editor_blueprint(resources, editor_source))
    app.register_error_handler(Exception, error_handler(resources))
    return app


def error_handler(resources: Resources):
    """The app's handler of every exception (see the module docstring)."""
    settings = resources.settings
    scrub = scrubber(settings)

    def error(exc):
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
