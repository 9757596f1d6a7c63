"""A task's finepose status inside Label Studio: the ``finepose_error`` task data field.

Label Studio 1.23 shows every task data key as a Data Manager column, so a project manager
sees why a task has no prediction (and can filter or sort by it) without reading the
backend's log: a task whose prediction failed gets ``data.finepose_error = "<reason>"``; the
next successful prediction sets it back to ``""``. The failed task holds no prediction of the
backend's version, so "Retrieve Predictions" tries it again once the cause is fixed.

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

from ls_backend.settings import Settings

logger = logging.getLogger(__name__)

FIELD = "finepose_error"
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
    text = "" if error is None else " ".join(str(error).split())[:MAX_CHARS]
    if task["data"].get(FIELD, "") == text:
        return None
    if not settings.label_studio_url or not settings.api_key:
        return None
    key = (settings.label_studio_url, task["id"])
    with _waiting_lock:
        queued = key in _waiting
        _waiting[key] = text
    if queued:  # the write already waiting takes this newer status
        return None
    return in_background(_write_newest, settings, key)


def in_background(function, *args) -> Future:
    """Run ``function(*args)`` on the one background writer thread (see the module docstring)."""
    future = _pool.submit(function, *args)
    _pending[:] = [f for f in _pending if not f.done()] + [future]
    return future


def flush(timeout: float = 60.0) -> None:
    """Wait for the status writes submitted so far."""
    for future in list(_pending):
        future.result(timeout=timeout)


def _write_newest(settings: Settings, key: tuple) -> None:
    with _waiting_lock:
        text = _waiting.pop(key)
    _write(settings, key[1], text)


def _write(settings: Settings, task_id: int, text: str) -> None:
    from ls_backend.labelstudio import connection, merge_task_data

    try:
        if not merge_task_data(connection(settings).sdk(), task_id, {FIELD: text}):
            return
        logger.info("task %s: %s %s", task_id, FIELD, repr(text) if text else "cleared")
    except Exception as exc:  # a status that cannot be written must not fail the prediction
        logger.warning("task %s: could not write %s to Label Studio: %s", task_id, FIELD, exc)
