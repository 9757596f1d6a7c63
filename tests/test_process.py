"""Shared state made one way (:mod:`ls_backend.process`): callers of one key share one run,
also when a run fails while others wait."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ls_backend.process import KeyedLocks, SharedRuns, made_once


def test_waiters_share_one_run_and_a_later_caller_the_kept_result():
    runs, calls = SharedRuns(ttl=60), []

    def work():
        calls.append(1)
        time.sleep(0.3)
        return "answer"

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: runs.run("task", work), range(4)))
    assert len(calls) == 1 and sorted(how for _, how in got) == ["joined", "joined", "joined", "ran"]
    assert runs.run("task", work) == ("answer", "kept") and len(calls) == 1


def test_a_failed_run_is_run_again_by_one_caller_at_a_time():
    """The first run fails while two callers wait: one of them runs it again, the other (and a
    newcomer) wait for that run: never two at once."""
    runs, active, most, attempts = SharedRuns(ttl=60), [0], [0], []
    lock = threading.Lock()

    def work():
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            attempts.append(1)
            first = len(attempts) == 1
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        if first:
            raise RuntimeError("first run fails")
        return "answer"

    def call(_):
        try:
            return runs.run("task", work)
        except RuntimeError:
            return ("failed", "ran")

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call, k) for k in range(3)]
        time.sleep(0.45)  # the retry is running: a newcomer joins it
        futures.append(pool.submit(call, 3))
        got = [f.result() for f in futures]
    assert most[0] == 1 and len(attempts) == 2
    assert sorted(how for _, how in got) == ["joined", "joined", "ran", "ran"]
    assert [r for r, _ in got].count("failed") == 1


def test_made_once_builds_once_per_arguments_and_keeps_no_failure():
    built = []

    @made_once
    def thing(name):
        built.append(name)
        if name == "bad":
            raise ValueError(name)
        return object()

    assert thing("a") is thing("a") and thing("a") is not thing("b") and built == ["a", "b"]
    for _ in range(2):
        with pytest.raises(ValueError):
            thing("bad")
    assert built.count("bad") == 2


def test_keyed_locks_hold_one_key_and_forget_it_after():
    locks, order = KeyedLocks(), []

    def hold(tag):
        with locks.hold(7):
            order.append(f"{tag} in")
            time.sleep(0.1)
            order.append(f"{tag} out")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(hold, "ab"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    assert locks._locks == {}
