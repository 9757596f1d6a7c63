"""Resumable JSON-lines logs (``refine-batch`` results, ``prelabel`` progress): one JSON object
per line, each naming the item it is about in a ``key`` field, appended and flushed as work
finishes, so an interrupted run leaves every finished item on disk.

A crash can leave the last line cut short (no newline): readers ignore it and :func:`resume`
cuts it off before appending. A complete line that is not such an object is an error naming
the line (the file is not a log of this kind; fix or remove it).
"""

from __future__ import annotations

import json
from pathlib import Path

from ls_backend.errors import DataError


class LogError(DataError):
    """A JSON-lines log that cannot be resumed as it is."""


def read_log(path: str | Path, key: str) -> list[dict]:
    """The records on the complete lines of the log at ``path``, in file order."""
    return _complete(Path(path), key)[0]


def resume(path: str | Path, key: str) -> list[dict]:
    """The records of the log at ``path`` (none when it does not exist), after cutting off a
    cut-short last line, ready to be appended to."""
    path = Path(path)
    if not path.exists():
        return []
    records, complete_bytes = _complete(path, key)
    if complete_bytes < path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(complete_bytes)
    return records


class LogWriter:
    """Appends records to a log, one flushed line each (``with LogWriter(path) as log: log.write(r)``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = None

    def __enter__(self) -> "LogWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a")
        return self

    def __exit__(self, *exc) -> bool:
        self._file.close()
        return False

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()


def _complete(path: Path, key: str) -> tuple[list[dict], int]:
    """The records on the newline-terminated lines of ``path`` and those lines' byte length."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    records = []
    for number, line in enumerate(complete.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LogError(f"{path}: line {number} is not a JSON record; fix or remove the file") from None
        if not isinstance(record, dict) or key not in record:
            raise LogError(f"{path}: line {number} has no {key}; fix or remove the file")
        records.append(record)
    return records, len(complete)
