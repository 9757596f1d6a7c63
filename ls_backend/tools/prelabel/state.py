"""The state file of ``finepose prelabel`` (JSON lines, :mod:`ls_backend.tools.jsonlines`):
one line per task and run, written once the task's predictions are stored or its failure
recorded, so a killed run leaves every finished task on disk.

``{"task", "status": "done", "model", "fingerprint", "model_version", "score", "seconds":
{stage: s}, "rss_mb": {stage: MB}, ["lost_workers": tries cut short by a dead worker]}`` or ``{"task", "status": "failed", "error", "retry", ...}``.
``retry`` is true for failures that are not the task's own (its worker lost, Label Studio
unreachable while storing): any re-run tries those again; the others wait for
``--retry-failed``. A task's last line is its state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ls_backend.tools.jsonlines import LogWriter, resume


@dataclass
class History:
    """What earlier runs left: ``done`` (task -> the model fingerprint its prediction was made
    with) and ``failed`` (task -> reason, for failures of the task's own)."""

    done: dict[int, str | None] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> "History":
        history = cls()
        for record in resume(path, "task"):
            task = int(record["task"])
            history.done.pop(task, None)
            history.failed.pop(task, None)
            if record.get("status") == "done":
                history.done[task] = record.get("fingerprint")
            elif record.get("status") == "failed" and not record.get("retry"):
                history.failed[task] = record.get("error", "")
        return history


class StateLog(LogWriter):
    """Appends a task's line once per run (a second outcome of one task is ignored: a retried
    worker's duplicate)."""

    def __init__(self, path: Path, version: str):
        super().__init__(path)
        self.version = version
        self.written: set[int] = set()

    def done(self, item: dict, seconds: dict) -> None:
        self._line(item, status="done", score=item.get("score"), seconds=_rounded(seconds),
                   rss_mb=item.get("rss_mb", {}))

    def failed(self, item: dict) -> None:
        self._line(item, status="failed", error=item["error"], retry=bool(item.get("retry")),
                   seconds=_rounded(item.get("seconds", {})), rss_mb=item.get("rss_mb", {}))

    def _line(self, item: dict, **fields) -> None:
        if item["id"] in self.written:
            return
        self.written.add(item["id"])
        if item.get("attempts"):  # tries cut short by a lost worker before this one
            fields["lost_workers"] = item["attempts"]
        self.write({"task": item["id"], "model": item.get("model"), "fingerprint": item.get("fingerprint"),
                    "model_version": self.version, **fields})


def _rounded(seconds: dict) -> dict:
    return {stage: round(value, 4) for stage, value in seconds.items()}
