"""Reading Label Studio projects through label-studio-sdk as plain dicts."""

from __future__ import annotations

from collections.abc import Iterator


def as_dict(item) -> dict:
    """An SDK object (pydantic model) or a dict, as a dict."""
    if isinstance(item, dict):
        return item
    return item.model_dump() if hasattr(item, "model_dump") else item.dict()


def project_tasks(client, project_id: int) -> Iterator[dict]:
    """Every task of a project with its annotations and predictions (the SDK pages for us)."""
    for task in client.tasks.list(project=project_id, fields="all"):
        yield as_dict(task)
