"""What finepose's Ray Data streams share (``prelabel --ray``, ``refine-batch --executor ray``):
rows that carry one pickled Python object each, Ray's own restarts and retries, and the
accounting that gives every item an outcome.

Rows are ``{"id", "item": pickle}``: the items hold nested dicts, bytes and arrays of any
shape, which Arrow's columns do not. A dead actor is restarted (``max_restarts=-1``) and its
block run again (:data:`TRIES` tries in all); a block that still fails is skipped
(``DataContext.max_errored_blocks = -1``) and :func:`outcomes` names its items, so that the
caller reports them failed, retryable.
"""

from __future__ import annotations

import math
import pickle
from typing import Callable, Iterable, Iterator

#: Tries of an item whose worker died (locally: alone in its worker; on Ray: with its block)
#: before it is reported lost.
TRIES = 3
#: Ray options of an actor pool stage.
ACTOR_RETRIES = {"max_restarts": -1, "max_task_retries": TRIES - 1}
LOST = f"its worker died {TRIES} times while working on it (out of memory, a node lost, or killed)"


def pack(item_id, item) -> dict:
    return {"id": item_id, "item": pickle.dumps(item)}


def unpack(row) -> object:
    return pickle.loads(row["item"])


def rows(items: list, item_id: Callable, per_block: int):
    """A Ray dataset of ``items`` (blocks of ``per_block``: what a dead worker's retry redoes)."""
    import ray.data

    ray.data.DataContext.get_current().max_errored_blocks = -1  # lost blocks: see outcomes()
    return ray.data.from_items([pack(item_id(item), item) for item in items],
                               override_num_blocks=max(1, math.ceil(len(items) / max(1, per_block))))


def outcomes(stream, items: Iterable, item_id: Callable, lost: Callable) -> Iterator:
    """Each item's outcome from ``stream`` once (a retried block's second copy is dropped),
    then ``lost(item)`` for each item the stream never gave back."""
    seen = set()
    for row in stream.iter_rows():
        if row["id"] not in seen:
            seen.add(row["id"])
            yield unpack(row)
    for item in items:
        if item_id(item) not in seen:
            yield lost(item)


def stdout_to_stderr():
    """A context in which Python's stdout goes to stderr: Ray prints its workers' and raylets'
    messages on stdout, and finepose's commands keep stdout for their JSON summary."""
    import contextlib
    import sys

    return contextlib.redirect_stdout(sys.stderr)


def check_address(address: str | None) -> None:
    """Refuse a Ray Client address (``ray://``): Ray Data, which finepose's Ray runs stream
    through, does not run over Ray Client in Ray 2.60 (it fails inside Ray with
    ``'Worker' object has no attribute 'core_worker'``)."""
    from ls_backend.errors import DataError

    if address and address.startswith("ray://"):
        raise DataError(f"{address}: Ray Client addresses (ray://) cannot run finepose's Ray Data stream; run "
                        "the command on a node of the cluster with --ray auto (or HEAD:6379 from a machine that "
                        "reaches every node), or submit it as a Ray job: ray job submit --address "
                        "http://HEAD:8265 -- finepose ...")
