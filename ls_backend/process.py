"""Process-wide state, made one way: :func:`per_process` for objects built once per key (the
Label Studio connections, media caches, the segmenter, the shared resources),
:class:`SharedRuns` for work that callers with the same key share (one refinement per task
and inputs, one load per editor task) and :class:`Recent` for a bounded memory (the
annotations finepose corrected).

Each gunicorn worker process holds its own; nothing here crosses processes.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


def per_process(factory: Callable[..., T]) -> Callable[..., T]:
    """``factory`` made once per process for each distinct (hashable) argument tuple; built
    under a lock, so concurrent first callers get the same object. ``.forget()`` drops them
    all (tests)."""
    made: dict = {}
    lock = threading.Lock()

    @functools.wraps(factory)
    def get(*args):
        with lock:
            if args not in made:
                made[args] = factory(*args)
            return made[args]

    def forget() -> None:
        with lock:
            made.clear()

    get.forget = forget
    return get


class SharedRuns:
    """``run(key, work)``: callers with the same ``key`` share one call of ``work``.

    While one runs, the others wait for it and get its result; a result is kept ``ttl``
    seconds for later callers (at most ``size`` results, the oldest dropped first). A failure
    is not kept: it is raised to its caller, and a waiter (or the next caller) runs ``work``
    again. :meth:`run` says how a caller got its result: :data:`RAN`, :data:`JOINED` (it
    waited for a run in flight) or :data:`KEPT` (a kept result)."""

    RAN, JOINED, KEPT = "ran", "joined", "kept"

    def __init__(self, ttl: float, size: int = 256):
        self.ttl, self.size = ttl, size
        self._done: OrderedDict = OrderedDict()  # key -> (time, result)
        self._running: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def run(self, key: Hashable, work: Callable[[], T]) -> tuple[T, str]:
        """``(result, how)`` (see the class docstring)."""
        with self._lock:
            found = self._fresh(key)
            if found is not None:
                return found[1], self.KEPT
            running = self._running.setdefault(key, threading.Lock())
        with running:  # one run per key at a time; the others wait for it
            with self._lock:
                found = self._fresh(key)
                if found is not None:
                    return found[1], self.JOINED
            try:
                result = work()
            finally:
                with self._lock:
                    if self._running.get(key) is running:
                        del self._running[key]  # waiters hold it; later callers find the result
            with self._lock:
                self._done[key] = (time.monotonic(), result)
                self._done.move_to_end(key)
                while len(self._done) > self.size:
                    self._done.popitem(last=False)
            return result, self.RAN

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._done.pop(key, None)

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
