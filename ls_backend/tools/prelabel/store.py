"""The store stage of ``finepose prelabel``: finished work items into Label Studio.

Predictions are written in bulk (label-studio-sdk's ``projects.import_predictions``): one call
per ``chunk`` tasks, or fewer when an item arrives and the first waiting one has waited
``max_wait_s``, and at the end. Label Studio keeps the list's order, so a task's best
prediction, stored last, is the one its editor opens. Then a changed model's earlier
predictions (``stale``) are deleted, the task's ``finepose_error`` is set or cleared
(:mod:`ls_backend.studio.taskdata`) and the state file gets the task's line (:mod:`.state`).

Label Studio slow or briefly down: a chunk is retried with exponential backoff (``attempts``
tries, ``backoff`` s doubling). A call that may have reached Label Studio (anything but a
refused connection) is followed, before its retry, by a look at which of its tasks now hold a
prediction of this version: those are done (the answer was lost, not the write), so no task is
predicted twice; a task that Label Studio cannot tell about then is not sent again but
recorded failed, transient (the next run's plan sees the truth). Label Studio refusing a chunk
(HTTP 4xx) is split in halves until the task at fault is alone: it is recorded failed with
Label Studio's answer, the others are stored. A chunk still failing after every try is
recorded failed, transient.
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
    fresh access token. ``on_stored(item, seconds)`` is called once per item recorded
    (progress; ``seconds``: its share of the bulk write, None for a failure)."""

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
        self.max_wait_s = max_wait_s
        self.calls = 0  # bulk writes sent (retries and halves included)
        self.seconds = 0.0  # spent writing predictions
        self._waiting: list[dict] = []
        self._since = 0.0

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
        refused: dict[int, str] = {}
        try:
            unstored = self._write(waiting, refused)
        finally:
            self.seconds += time.perf_counter() - started
        share = (time.perf_counter() - started) / len(waiting)
        for item in waiting:
            if item["id"] in refused:
                self._record_failure({**item, "error": refused[item["id"]], "failed_stage": "store"})
            elif item["id"] in unstored:
                self._record_failure({**item, "error": unstored[item["id"]], "failed_stage": "store",
                                      "transient": True})
            else:
                self._record_done(item, share)

    def _write(self, items: list[dict], refused: dict[int, str]) -> dict[int, str]:
        """Write ``items``' predictions, with retries; tasks Label Studio refused go into
        ``refused`` (task -> its answer); returns the tasks not stored (task -> why)."""
        todo = list(items)
        unstored: dict[int, str] = {}
        error, maybe_sent = "", False
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
                if maybe_sent:
                    todo, unknown = self._not_yet_stored(todo)
                    unstored.update((item["id"], error) for item in unknown)  # never sent twice
                if not todo:
                    return unstored
            try:
                self._import(todo)
                return unstored
            except Exception as exc:  # noqa: BLE001 (the SDK's ApiError, transport errors: retried, then recorded)
                status = getattr(exc, "status_code", None)
                if status is not None and 400 <= status < 500:
                    return {**unstored, **self._refused(todo, exc, refused)}
                maybe_sent = not _refused_connection(exc)
                error = f"could not store the predictions in Label Studio ({type(exc).__name__}: {exc})"
                logger.warning("storing %d tasks' predictions, try %d of %d: %s", len(todo), attempt + 1,
                               self.attempts, error)
        return {**unstored, **{item["id"]: error for item in todo}}

    def _import(self, items: list[dict]) -> None:
        self.calls += 1
        self.client().projects.import_predictions(id=self.project, request=[
            {"task": item["id"], "result": p["result"], "score": p["score"], "model_version": p["model_version"]}
            for item in items for p in item["predictions"]])  # see Outcome.stored_order: the best last

    def _refused(self, items: list[dict], exc: Exception, refused: dict[int, str]) -> dict[int, str]:
        """Label Studio refused the chunk: halves until the task at fault is alone."""
        if len(items) == 1:
            refused[items[0]["id"]] = f"Label Studio refused the prediction (HTTP {exc.status_code}: {exc.body})"
            return {}
        middle = len(items) // 2
        return {**self._write(items[:middle], refused), **self._write(items[middle:], refused)}

    def _not_yet_stored(self, items: list[dict]) -> tuple[list[dict], list[dict]]:
        """(the items without a prediction of this version that the plan did not see, the
        items Label Studio cannot tell about now)."""
        missing, unknown = [], []
        for item in items:
            try:
                found = [as_dict(p) for p in self.client().predictions.list(task=item["id"])]
            except Exception:  # noqa: BLE001 (still unreachable)
                unknown.append(item)
                continue
            if not any(p.get("model_version") == self.version and p.get("id") not in item["stale"] for p in found):
                missing.append(item)
        return missing, unknown

    def _record_done(self, item: dict, seconds: float) -> None:
        self.log.done(item, {**item.get("seconds", {}), "store": seconds})
        try:  # a changed model: the replaced predictions go (one left behind is logged, not fatal)
            delete_predictions(self.client(), item["stale"])
        except Exception as exc:  # noqa: BLE001
            logger.warning("task %s: its replaced predictions %s were not deleted: %r", item["id"], item["stale"], exc)
        taskdata.report(self.settings, self._task(item), item.get("notes") or None)
        self.on_stored(item, seconds)

    def _record_failure(self, item: dict) -> None:
        self.log.failed(item)
        taskdata.report(self.settings, self._task(item), item["error"])
        self.on_stored(item, None)

    def _task(self, item: dict) -> dict:
        """The task as :func:`taskdata.report` needs it (its status is written by project)."""
        return {"id": item["id"], "data": item["data"], "project": self.project}


def _refused_connection(exc: Exception) -> bool:
    """Whether the call surely never reached Label Studio (the connection was refused)."""
    import httpx

    return isinstance(exc, (httpx.ConnectError, ConnectionRefusedError))
