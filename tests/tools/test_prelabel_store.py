"""The store stage of ``finepose prelabel`` against a Label Studio that fails: writes are
retried with backoff, a write whose answer was lost is not repeated, and a chunk that never
gets through is recorded failed, retryable."""

from __future__ import annotations

import json
from types import SimpleNamespace

from ls_backend.settings import Settings
from ls_backend.tools.prelabel.state import History, StateLog
from ls_backend.tools.prelabel.store import PredictionStore

VERSION = "finepose-test"


class FlakyStudio:
    """A fake label-studio-sdk client: ``import_predictions`` fails ``failures`` times first;
    with ``store_before_failing`` a failed call has stored its predictions all the same (an
    answer lost on the way back)."""

    def __init__(self, failures: int, store_before_failing: bool = False, refuse: int | None = None,
                 blind: bool = False):
        self.failures = failures
        self.store_before_failing = store_before_failing
        self.refuse = refuse  # a task whose prediction Label Studio refuses (HTTP 400)
        self.blind = blind  # listing predictions fails too
        self.stored: list[dict] = []
        self.calls = 0
        self.projects = SimpleNamespace(import_predictions=self._import)
        self.predictions = SimpleNamespace(list=self._list, delete=lambda id: None)

    def _import(self, id: int, request: list[dict]) -> None:
        from label_studio_sdk.core.api_error import ApiError

        self.calls += 1
        if any(p["task"] == self.refuse for p in request):
            raise ApiError(status_code=400, body={"task": "invalid"})
        if self.calls <= self.failures:
            if self.store_before_failing:
                self.stored.extend({**p, "id": len(self.stored) + 100} for p in request)
            raise ConnectionError("Label Studio is restarting")
        self.stored.extend({**p, "id": len(self.stored) + 100} for p in request)

    def _list(self, task: int) -> list[dict]:
        if self.blind:
            raise ConnectionError("Label Studio is restarting")
        return [p for p in self.stored if p["task"] == task]


def item(task: int) -> dict:
    prediction = {"result": [{"value": task}], "score": 0.9, "model_version": VERSION}
    return {"id": task, "data": {}, "model": "toy-car", "fingerprint": "f", "stale": [], "predictions": [prediction],
            "seconds": {"refine": 0.1}}


def store_all(studio: FlakyStudio, tasks, tmp_path, chunk: int = 10) -> list[dict]:
    state = tmp_path / "state.jsonl"
    with StateLog(state, VERSION) as log:
        store = PredictionStore(lambda: studio, Settings(), 1, log, VERSION, chunk=chunk, attempts=3, backoff=0.0)
        for task in tasks:
            store.add(item(task))
        store.flush()
    return [json.loads(line) for line in state.read_text().splitlines()]


def test_a_brief_outage_loses_nothing(tmp_path):
    studio = FlakyStudio(failures=2)
    lines = store_all(studio, range(1, 6), tmp_path)
    assert studio.calls == 3 and sorted(p["task"] for p in studio.stored) == [1, 2, 3, 4, 5]
    assert [line["status"] for line in lines] == ["done"] * 5


def test_a_write_whose_answer_was_lost_is_not_repeated(tmp_path):
    studio = FlakyStudio(failures=1, store_before_failing=True)
    lines = store_all(studio, range(1, 4), tmp_path)
    assert sorted(p["task"] for p in studio.stored) == [1, 2, 3]  # once each
    assert studio.calls == 1 and [line["status"] for line in lines] == ["done"] * 3


def test_an_outage_past_every_try_is_recorded_retryable(tmp_path):
    studio = FlakyStudio(failures=99)
    lines = store_all(studio, range(1, 4), tmp_path)
    assert studio.calls == 3 and not studio.stored
    assert all(line["status"] == "failed" and line["transient"] and "Label Studio is restarting" in line["error"]
               for line in lines)
    history = History.read(tmp_path / "state.jsonl")
    assert not history.failed and not history.done  # a re-run tries them again, --retry-failed or not


def test_bulk_writes_keep_each_tasks_best_prediction_last(tmp_path):
    studio = FlakyStudio(failures=0)
    rival = {"result": [{"value": "rival"}], "score": 0.8, "model_version": VERSION}
    with StateLog(tmp_path / "state.jsonl", VERSION) as log:
        store = PredictionStore(lambda: studio, Settings(), 1, log, VERSION, chunk=2)
        store.add({**item(1), "predictions": [rival, *item(1)["predictions"]]})
        store.add(item(2))
    assert studio.calls == 1  # a full chunk is written at once
    assert [p["result"][0]["value"] for p in studio.stored] == ["rival", 1, 2]


def test_a_refused_task_is_singled_out_and_the_others_stored(tmp_path):
    studio = FlakyStudio(failures=0, refuse=3)
    lines = {line["task"]: line for line in store_all(studio, range(1, 6), tmp_path)}
    assert sorted(p["task"] for p in studio.stored) == [1, 2, 4, 5]
    assert lines[3]["status"] == "failed" and not lines[3]["transient"] and "HTTP 400" in lines[3]["error"]
    assert all(lines[t]["status"] == "done" for t in (1, 2, 4, 5))


def test_a_write_that_may_have_arrived_is_not_sent_again_blind(tmp_path):
    """The write failed after reaching Label Studio and Label Studio cannot say what it
    holds: nothing is sent again; the tasks are recorded transient for the next run's plan."""
    studio = FlakyStudio(failures=1, store_before_failing=True, blind=True)
    lines = store_all(studio, range(1, 4), tmp_path)
    assert studio.calls == 1 and len(studio.stored) == 3
    assert all(line["status"] == "failed" and line["transient"] for line in lines)
