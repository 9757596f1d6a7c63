"""The task data fields finepose writes, and their one writer.

- ``finepose_error`` (:data:`ERROR_FIELD`): why finepose could not refine the task, or which
  start it passed over (an annotation holding an out-of-range number, say). Label Studio 1.23
  shows every task data key as a Data Manager column, so a project manager sees it (and can
  filter or sort by it) without reading the backend's log; the templates show it on the
  labeling screen beside the editor link. The next clean prediction sets it back to ``""``. A
  task that failed on Retrieve Predictions holds no prediction of the backend's version, so
  Retrieve tries it again once the cause is fixed (a task ``prelabel`` failed to predict
  again keeps its earlier prediction). The text carries no server paths (:mod:`ls_backend.redact`)
  and no ``<``/``>`` (the labeling screen reads it as HTML).
- ``editor`` (:data:`EDITOR_FIELD`): the pose editor's link, a plain URL
  (:mod:`ls_backend.editor.links` makes it).

Projects whose labeling config shows them need both keys at import: :func:`import_fields`.

Label Studio waits for ``/predict`` to answer before it releases its database, so the field is
written from a background thread after the answer (each with a timeout). Every background
write into task data (this field, the pose editor's links) goes through :func:`in_background`:
one at a time, so two read-modify-writes of one task's data never interleave and lose a
field; :func:`flush` waits for pending writes (tests, shutdown). A status waiting to be
written is replaced by a newer one for the same task, so a Label Studio that is slow or
unreachable (each write then waits for its timeouts) holds at most one write per task.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ls_backend.redact import scrub
from ls_backend.settings import Settings

logger = logging.getLogger(__name__)

ERROR_FIELD = "finepose_error"
EDITOR_FIELD = "editor"
#: The task data fields finepose writes itself: outputs, never inputs of a prediction.
FINEPOSE_FIELDS = (ERROR_FIELD, EDITOR_FIELD)
MAX_CHARS = 500
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finepose-status")
_pending: list[Future] = []
_waiting: dict[tuple, str] = {}  # (Label Studio URL, task id) -> the newest status not yet written
_waiting_lock = threading.Lock()


def report(settings: Settings, task: dict, error: str | None) -> Future | None:
    """Write ``error`` (or clear it, for None) into the task's data, unless it is already so.

    Needs ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY``; without them (or without a task
    id) only the log holds the reason. Returns the write's future, or None when nothing is
    to be written or a write of this task still waiting takes the newer status instead."""
    if not isinstance(task, dict) or not isinstance(task.get("id"), int) or not isinstance(task.get("data"), dict):
        return None
    text = "" if error is None else status_text(settings, error)
    if task["data"].get(ERROR_FIELD, "") == text:
        return None
    if not settings.label_studio_url or not settings.api_key:
        return None
    key = (settings.label_studio_url, task["id"])
    project = task.get("project") if isinstance(task.get("project"), int) else None
    with _waiting_lock:
        queued = key in _waiting
        _waiting[key] = text
    if queued:  # the write already waiting takes this newer status
        return None
    return in_background(_write_newest, settings, key, project)


def status_text(settings: Settings, error: str) -> str:
    """``error`` as the field holds it: one line, at most :data:`MAX_CHARS`, no server paths,
    angle brackets as guillemets (the labeling screen reads the field as HTML)."""
    text = " ".join(scrub(settings, str(error)).split())
    return text.replace("<", "\u2039").replace(">", "\u203a")[:MAX_CHARS]


def import_fields(label_config: str) -> dict:
    """Task data a project with ``label_config`` needs at import: ``{"editor": "",
    "finepose_error": ""}`` when the config shows ``$editor`` (finepose fills them), else {}."""
    from label_studio_sdk.label_interface import LabelInterface

    shows = any(f"${EDITOR_FIELD}" in (tag.value or "") for tag in LabelInterface(label_config).objects)
    return {EDITOR_FIELD: "", ERROR_FIELD: ""} if shows else {}


def in_background(function, *args) -> Future:
    """Run ``function(*args)`` on the one background writer thread (see the module docstring)."""
    future = _pool.submit(function, *args)
    _pending[:] = [f for f in _pending if not f.done()] + [future]
    return future


def flush(timeout: float = 60.0) -> None:
    """Wait for the status writes submitted so far."""
    for future in list(_pending):
        future.result(timeout=timeout)


def _write_newest(settings: Settings, key: tuple, project: int | None = None) -> None:
    with _waiting_lock:
        text = _waiting.pop(key)
    _write(settings, key[1], text, project)


def _write(settings: Settings, task_id: int, text: str, project: int | None = None) -> None:
    from ls_backend.studio.client import connection, merge_task_data

    try:
        if not merge_task_data(connection(settings).sdk(), task_id, {ERROR_FIELD: text}, project_id=project):
            return
        logger.info("task %s: %s %s", task_id, ERROR_FIELD, repr(text) if text else "cleared")
    except Exception as exc:  # a status that cannot be written must not fail the prediction
        logger.warning("task %s: could not write %s to Label Studio: %s", task_id, ERROR_FIELD, exc)
