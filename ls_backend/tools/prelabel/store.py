"""The store stage of ``finepose prelabel``: finished work items into Label Studio.

Predictions are written in bulk (label-studio-sdk's ``projects.import_predictions``, one call
per ``chunk`` tasks, or fewer once the first has waited ``max_wait_s``; Label Studio keeps the list's order, so a task's best prediction, stored
last, is the one its editor opens) instead of one call each. Then a changed model's earlier
predictions (``stale``) are deleted, the task's ``finepose_error`` is set or cleared
(:mod:`ls_backend.studio.taskdata`) and the state file gets the task's line (:mod:`.state`).

Label Studio slow or briefly down: a chunk is retried with exponential backoff (``attempts``
tries, ``backoff`` s doubling). Before a retry, the chunk's tasks that already hold a
prediction of this version (the failed call was stored after all, its answer lost) are left
out, so no task is predicted twice. A chunk still refused after every try is recorded as
failed, retryable: the next run tries it again.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from ls_backend.studio import taskdata
from ls_backend.studio.client import as_dict, delete_predictions
from ls_backend.tools.prelabel.state import StateLog

logger = logging.getLogger(__name__)


class PredictionStore:
    """Collects finished items (:meth:`add`) and writes them ``chunk`` at a time; call
    :meth:`flush` at the end. ``client``: a callable giving a label-studio-sdk client with a
    fresh access token. ``on_stored(item, seconds)`` is called once per item recorded (progress;
    ``seconds``: its share of the bulk write, None for a failure)."""

    def __init__(self, client: Callable, settings, project: int, log: StateLog, version: str, chunk: int = 100,
                 attempts: int = 6, backoff: float = 1.0, on_stored: Callable = lambda item, seconds: None,
                 max_wait_s: float = 10.0):
        self.client = client
        self.settings = settings
        self.project = project
        self.log = log
        self.version = version
        self.chunk = max(1, int(chunk))
        self.attempts = max(1, int(attempts))
        self.backoff = float(backoff)
        self.on_stored = on_stored
        self.max_wait_s = max_wait_s  # a part chunk is written once its first item waited this long
        self._since = 0.0
        self.calls = 0  # bulk writes sent (retries included)
        self.seconds = 0.0  # spent writing predictions
        self._waiting: list[dict] = []

    def add(self, item: dict) -> None:
        """A finished item: failed ones are recorded at once, predicted ones wait for their chunk."""
        if "error" in item:
            self._record_failure(item)
            return
        if not self._waiting:
            self._since = time.monotonic()
        self._waiting.append(item)
        if len(self._waiting) >= self.chunk or time.monotonic() - self._since >= self.max_wait_s:
            self.flush()

    def flush(self) -> None:
        """Write the waiting items now."""
        waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        started = time.perf_counter()
        try:
            stored = self._write(waiting)
        finally:
            self.seconds += time.perf_counter() - started
        share = (time.perf_counter() - started) / len(waiting)
        for item in waiting:
            if item["id"] in stored:
                self._record_done(item, share)
            else:
                self._record_failure({**item, "error": stored.error, "retry": True})

    def _write(self, items: list[dict]) -> "_Stored":
        """The task ids whose predictions are in Label Studio after the bulk write (and its retries)."""
        todo = list(items)
        error = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
                todo = [item for item in todo if not self._already_stored(item)]
                if not todo:
                    break
            try:
                self.calls += 1
                self.client().projects.import_predictions(id=self.project, request=[
                    {"task": item["id"], "result": p["result"], "score": p["score"], "model_version": p["model_version"]}
                    for item in todo for p in item["predictions"]])  # see Outcome.stored_order: the best last
                todo = []
                break
            except Exception as exc:  # noqa: BLE001 (the SDK's ApiError, transport errors: retried, then recorded)
                error = f"could not store the predictions in Label Studio ({type(exc).__name__}: {exc})"
                logger.warning("storing %d tasks' predictions, try %d of %d: %s", len(todo), attempt + 1,
                               self.attempts, error)
        lost = {item["id"] for item in todo}
        return _Stored({item["id"] for item in items} - lost, error)

    def _already_stored(self, item: dict) -> bool:
        """Whether the task holds a prediction of this version that the plan did not see (a
        write whose answer was lost); False when Label Studio cannot tell us now."""
        try:
            found = [as_dict(p) for p in self.client().predictions.list(task=item["id"])]
        except Exception:  # noqa: BLE001 (still unreachable: the next try tells)
            return False
        return any(p.get("model_version") == self.version and p.get("id") not in item["stale"] for p in found)

    def _record_done(self, item: dict, seconds: float) -> None:
        delete_predictions(self.client(), item["stale"])  # a changed model: the replaced predictions go
        taskdata.report(self.settings, self._task(item), item.get("notes") or None)
        self.log.done(item, {**item.get("seconds", {}), "store": seconds})
        self.on_stored(item, seconds)

    def _record_failure(self, item: dict) -> None:
        taskdata.report(self.settings, self._task(item), item["error"])
        self.log.failed(item)
        self.on_stored(item, None)

    def _task(self, item: dict) -> dict:
        """The task as :func:`taskdata.report` needs it (its status is written by project)."""
        return {"id": item["id"], "data": item["data"], "project": self.project}


class _Stored(set):
    """Task ids stored, and the last error of the ones that were not."""

    def __init__(self, ids, error: str):
        super().__init__(ids)
        self.error = error
