"""Shared state, made one way: :func:`made_once` for objects built once per argument tuple
(the Label Studio connections, media caches, the segmenter, the shared resources: at module
level, once per process), :class:`SharedRuns` for work that callers with the same key share
(one refinement per task and inputs, one load per editor task), :class:`KeyedLocks` for work
that must not overlap for one key (the predictions of one task) and :class:`Recent` for a
bounded memory (the annotations finepose corrected).

Each gunicorn worker process holds its own; nothing here crosses processes.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


def made_once(factory: Callable[..., T]) -> Callable[..., T]:
    """``factory`` called once for each distinct (hashable) argument tuple, its result kept.
    Concurrent first callers of one tuple wait for one call (other tuples are not held up);
    a call that raises keeps nothing. ``.forget()`` drops them all (tests)."""
    made: dict = {}
    locks = KeyedLocks()

    @functools.wraps(factory)
    def get(*args):
        if args in made:
            return made[args]
        with locks.hold(args):
            if args not in made:
                made[args] = factory(*args)
            return made[args]

    get.forget = made.clear
    return get


class KeyedLocks:
    """One lock per key, held with ``with locks.hold(key):``; a key's lock is dropped once
    nobody holds or waits for it (the keys may be unbounded: task ids)."""

    def __init__(self):
        self._locks: dict[Hashable, list] = {}  # key -> [lock, holders and waiters]
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key: Hashable):
        with self._lock:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]


class SharedRuns:
    """``run(key, work)``: callers with the same ``key`` share one call of ``work``.

    While one runs, the others wait for it and get its result; a result is kept ``ttl``
    seconds for later callers (at most ``size`` results, the oldest dropped first). A failure
    is not kept: it is raised to its caller, and one waiter (or the next caller) runs
    ``work`` again. :meth:`run` says how a caller got its result: :data:`RAN`,
    :data:`JOINED` (it waited for a run in flight) or :data:`KEPT` (a kept result)."""

    RAN, JOINED, KEPT = "ran", "joined", "kept"

    def __init__(self, ttl: float, size: int = 256):
        self.ttl, self.size = ttl, size
        self._done: OrderedDict = OrderedDict()  # key -> (time, result)
        self._running: dict[Hashable, threading.Event] = {}  # key -> set when its run ends
        self._lock = threading.Lock()

    def run(self, key: Hashable, work: Callable[[], T]) -> tuple[T, str]:
        """``(result, how)`` (see the class docstring)."""
        joined = False
        while True:
            with self._lock:
                found = self._fresh(key)
                if found is not None:
                    return found[1], self.JOINED if joined else self.KEPT
                flight = self._running.get(key)
                if flight is None:  # nobody runs it: this caller does
                    flight = self._running[key] = threading.Event()
                    break
            joined = True
            flight.wait()  # then look again: its result, or (it failed) run it here
        try:
            result = work()
        except BaseException:
            with self._lock:
                del self._running[key]
            flight.set()
            raise
        with self._lock:  # the result is found before the run is seen to end
            self._done[key] = (time.monotonic(), result)
            self._done.move_to_end(key)
            while len(self._done) > self.size:
                self._done.popitem(last=False)
            del self._running[key]
        flight.set()
        return result, self.RAN

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._done.pop(key, None)

    def clear(self) -> None:
        """Forget every kept result (runs in flight go on)."""
        with self._lock:
            self._done.clear()

    def _fresh(self, key: Hashable):
        found = self._done.get(key)
        if found is not None and time.monotonic() - found[0] >= self.ttl:
            del self._done[key]
            return None
        return found


class Recent:
    """A bounded, thread-safe memory of the last ``size`` (key, value) pairs."""

    def __init__(self, size: int = 1024):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: Hashable, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, key: Hashable, default=None):
        with self._lock:
            return self._items.get(key, default)
