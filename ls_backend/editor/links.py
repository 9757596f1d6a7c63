"""Signed editor links: one task (or one project's queue) each, valid for a limited time.

A task link is ``<editor url>/editor/<task id>?t=<token>``; the token is an HMAC-signed
(itsdangerous) ``{"task", "project", "exp"}`` and is checked on every request of the page,
so a link opens, reads and writes its own task only. A project link
``<editor url>/editor/project/<project id>?t=<token>`` signs ``{"project", "exp"}`` and opens
the project's next task without an annotation. ``exp`` is a Unix time (seconds); links live
``FINEPOSE_EDITOR_LINK_S`` seconds. The key is ``FINEPOSE_EDITOR_SECRET``, or else one derived
from ``LABEL_STUDIO_API_KEY`` (so every worker and restart agrees without more settings); the
browser never sees either.

Label Studio shows a task's link on the labeling screen through the template's ``HyperText``
named ``editor``, whose value builds the anchor around task data ``editor`` (a plain URL, so
the Data Manager's column reads as a URL, not as HTML) and shows ``finepose_error`` beside it
(:mod:`ls_backend.studio.taskdata`). Label Studio requires every task of such a project to
carry ``editor`` when it is imported (:func:`~ls_backend.studio.taskdata.import_fields`); the
link is written by :func:`fill_project_links` (the import tools, ``finepose editor links``)
and renewed by the backend when it predicts a task.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from ls_backend.errors import ConfigError, LinkError
from ls_backend.studio import taskdata
from ls_backend.studio.taskdata import EDITOR_FIELD, ERROR_FIELD
from ls_backend.settings import Settings

logger = logging.getLogger(__name__)

_SALT = "finepose-editor-link"
_HREF = re.compile(r'href="([^"]+)"')  # links written as HTML by finepose 0.2 and earlier


@dataclass(frozen=True)
class Claims:
    """What a verified token grants: a task of a project (task None for a project link)."""

    project: int
    task: int | None
    expires: float


def editor_key(settings: Settings) -> str:
    """The key the editor signs with (links, the annotator's session): ``FINEPOSE_EDITOR_SECRET``,
    or one derived from ``LABEL_STUDIO_API_KEY``; ConfigError (503) when neither is set."""
    secret = settings.editor_secret
    if not secret and settings.api_key:
        secret = hmac.new(settings.api_key.encode(), b"finepose-editor-links", hashlib.sha256).hexdigest()
    if not secret:
        raise ConfigError("editor links need FINEPOSE_EDITOR_SECRET or LABEL_STUDIO_API_KEY to be signed")
    return secret


class LinkSigner:
    """Makes and checks editor tokens with the backend's key."""

    def __init__(self, settings: Settings, now=time.time):
        self._serializer = URLSafeSerializer(editor_key(settings), salt=_SALT)
        self.lifetime = settings.editor_link_seconds
        self._now = now

    def token(self, project: int, task: int | None = None, lifetime: float | None = None) -> str:
        """A token for ``task`` of ``project`` (or for the project's queue when task is None)."""
        expires = int(self._now() + (self.lifetime if lifetime is None else lifetime))
        payload = {"project": int(project), "exp": expires}
        if task is not None:
            payload["task"] = int(task)
        return self._serializer.dumps(payload)

    def claims(self, token) -> Claims:
        """The verified claims of ``token``; :class:`LinkError` (403) when forged or expired."""
        if not isinstance(token, str) or not token:
            raise LinkError("this editor page needs its signed link (?t=...): open it from the Label Studio task")
        try:
            payload = self._serializer.loads(token)
            claims = Claims(int(payload["project"]), payload.get("task"), float(payload["exp"]))
        except (BadSignature, KeyError, TypeError, ValueError):
            raise LinkError("this editor link is not valid (forged or damaged): open it from the Label Studio task") from None
        if claims.expires < self._now():
            raise LinkError("this editor link has expired: reopen the task in Label Studio for a fresh link")
        return claims

    def for_task(self, token, task_id: int) -> Claims:
        """The claims of a task token, checked to name ``task_id``."""
        claims = self.claims(token)
        if claims.task is None or int(claims.task) != int(task_id):
            raise LinkError(f"this editor link is not for task {task_id}")
        return claims

    def for_project(self, token, project_id: int) -> Claims:
        """The claims of a project token, checked to name ``project_id``."""
        claims = self.claims(token)
        if claims.task is not None or claims.project != int(project_id):
            raise LinkError(f"this link is not the editor link of project {project_id}")
        return claims


def task_url(base_url: str, signer: LinkSigner, project: int, task: int) -> str:
    return f"{base_url.rstrip('/')}/editor/{int(task)}?t={signer.token(project, task)}"


def project_url(base_url: str, signer: LinkSigner, project: int) -> str:
    return f"{base_url.rstrip('/')}/editor/project/{int(project)}?t={signer.token(project)}"


def link_html(url: str, text: str = "Open in the pose editor") -> str:
    """An HTML link that opens a new tab (the project instructions' link)."""
    return f'<a href="{html.escape(url)}" target="_blank" rel="noopener">{html.escape(text)}</a>'


def link_in(value) -> str | None:
    """The editor URL held by a task's ``editor`` field (a URL, or an older HTML link), or None."""
    if not isinstance(value, str):
        return None
    if value.startswith(("http://", "https://")):
        return value.strip()
    found = _HREF.search(value)
    return html.unescape(found.group(1)) if found else None


def needs_link(data: dict, signer: LinkSigner, task_id: int, base_url: str) -> bool:
    """Whether a task's ``editor`` field lacks a plain link to ``base_url`` valid for at least
    half a lifetime more (so links are renewed well before they expire), or the task lacks
    ``finepose_error`` (which the template shows beside it). An HTML link (finepose 0.2 and
    earlier) is replaced by its URL."""
    data = data or {}
    value = data.get(EDITOR_FIELD)
    url = link_in(value)
    if not url or url != value or ERROR_FIELD not in data:
        return True
    if not url.startswith(f"{base_url.rstrip('/')}/editor/{int(task_id)}?t="):
        return True
    try:
        claims = signer.for_task(url.split("?t=", 1)[1], task_id)
    except LinkError:
        return True
    return claims.expires - signer._now() < signer.lifetime / 2


def fill_task_link(client, task: dict, signer: LinkSigner, base_url: str) -> bool:
    """Write a fresh link into one task's data when it needs one (and an empty
    ``finepose_error`` where the task has none, so the labeling screen never shows a missing
    field); True when it wrote."""
    from ls_backend.studio import client as labelstudio

    if not needs_link(task.get("data") or {}, signer, task["id"], base_url):
        return False
    fields = {EDITOR_FIELD: task_url(base_url, signer, task["project"], task["id"])}
    return labelstudio.merge_task_data(client, task["id"], fields, defaults={ERROR_FIELD: ""}, project_id=task["project"])


def fill_project_links(client, project_id: int, settings: Settings, base_url: str | None = None) -> dict:
    """Give every task of a project a fresh editor link (those that need one) and put the
    project's link into its labeling instructions. Returns counts and the project link."""
    from ls_backend.studio import client as labelstudio

    base_url = base_url or settings.editor_url
    if not base_url:
        raise ConfigError("editor links need FINEPOSE_EDITOR_URL: the backend's URL as annotators' browsers reach it")
    signer = LinkSigner(settings)
    written = total = 0
    for task in labelstudio.project_tasks(client, project_id):
        total += 1
        written += fill_task_link(client, {**task, "project": project_id}, signer, base_url)
    link = project_url(base_url, signer, project_id)
    labelstudio.set_instructions_block(client, project_id, "finepose-editor",
                                       link_html(link, "Pose editor: the next task without an annotation"))
    return {"project": project_id, "tasks": total, "links_written": written, "project_link": link}


def renew_links_later(tasks, project, resources) -> None:
    """In a background thread, write a fresh link into each of ``tasks`` (as ``/predict``
    receives them) whose project shows the editor (its data has the ``editor`` key) and
    whose link is missing or past half its life. Needs ``FINEPOSE_EDITOR_URL``; failures
    are logged, never raised (predictions do not wait on this)."""
    settings = resources.settings
    if not settings.editor_url or not settings.label_studio_url or not settings.api_key:
        return
    try:
        signer = LinkSigner(settings)
        project_id = int(str(project).split(".")[0]) if project is not None else None
    except (ConfigError, ValueError):
        return
    todo = [
        {"id": t["id"], "project": t.get("project") or project_id, "data": t["data"]}
        for t in tasks
        if isinstance(t, dict) and isinstance(t.get("data"), dict) and EDITOR_FIELD in t["data"] and t.get("id") is not None
        and (t.get("project") or project_id) and needs_link(t["data"], signer, t["id"], settings.editor_url)
    ]
    if not todo:
        return

    def work():
        try:
            client = resources.client()
            for task in todo:
                fill_task_link(client, task, signer, settings.editor_url)
        except Exception as exc:  # noqa: BLE001 - a link is a convenience: log and go on
            logger.warning("could not write editor links for %d task(s): %s", len(todo), exc)

    taskdata.in_background(work)  # the one writer of task data: never interleaved with finepose_error
