"""The state file of ``finepose prelabel`` (JSON lines, :mod:`ls_backend.tools.jsonlines`):
one line per task and run, written once the task's predictions are stored or its failure
recorded, so a killed run leaves every finished task on disk.

``{"task", "status": "done", "model", "fingerprint", "model_version", "score", "seconds":
{stage: s}, "rss_mb": {stage: MB}, "pids": {stage: pid}, ["lost_workers": n]}`` or ``{"task",
"status": "failed", "error", "transient", ...}``. ``transient`` is true for failures that are
not the task's own (its Ray worker lost, a media server or Label Studio that did not answer): any
re-run tries those again; the others wait for ``--retry-failed``. ``lost_workers``: how many
workers died while on the task before this outcome. A task's last line is its state; the
fingerprint of its last prediction is kept whatever followed, so that a model changed since
is noticed even after a failed redo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ls_backend.tools.jsonlines import LogWriter, resume


@dataclass
class History:
    """What earlier runs left: ``done`` (task -> the model fingerprint of its last stored
    prediction) and ``failed`` (task -> reason, for tasks whose last outcome is a failure of
    their own)."""

    done: dict[int, str | None] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> "History":
        history = cls()
        for record in resume(path, "task"):
            task = int(record["task"])
            history.failed.pop(task, None)
            if record.get("status") == "done":
                history.done[task] = record.get("fingerprint")
            elif record.get("status") == "failed" and not record.get("transient"):
                history.failed[task] = record.get("error", "")
        return history


class StateLog(LogWriter):
    """Appends each task's line as its outcome is recorded."""

    def __init__(self, path: Path, version: str):
        super().__init__(path)
        self.version = version

    def done(self, item: dict, seconds: dict) -> None:
        self._line(item, status="done", score=item.get("score"), seconds=_rounded(seconds))

    def failed(self, item: dict) -> None:
        self._line(item, status="failed", error=item["error"], transient=bool(item.get("transient")),
                   seconds=_rounded(item.get("seconds", {})))

    def _line(self, item: dict, **fields) -> None:
        fields.update(rss_mb=item.get("rss_mb", {}), pids=item.get("pids", {}))
        if item.get("lost_workers"):
            fields["lost_workers"] = item["lost_workers"]
        self.write({"task": item["id"], "model": item.get("model"), "fingerprint": item.get("fingerprint"),
                    "model_version": self.version, **fields})


def _rounded(seconds: dict) -> dict:
    return {stage: round(value, 4) for stage, value in seconds.items()}
