"""Label Studio access through label-studio-sdk: one authenticated connection per
``LABEL_STUDIO_URL`` + ``LABEL_STUDIO_API_KEY``, and projects read as plain dicts.

``LABEL_STUDIO_API_KEY`` may be either kind of token Label Studio 1.23 issues:

- a **Personal Access Token** (the default; Account & Settings -> Personal Access Token): a
  JWT *refresh* token. It is never sent as a credential itself: label-studio-sdk's client
  exchanges it at ``/api/token/refresh/`` for an *access* token (5 minutes in Label Studio
  1.23), sent as ``Authorization: Bearer <access>``. :class:`Connection` exchanges it again
  :data:`REFRESH_MARGIN_S` seconds before the access token expires, and once more when Label
  Studio answers 401 (e.g. a restarted server with a new signing key).
- a **legacy token** (only when Organization -> API Tokens Settings enables legacy tokens):
  sent as ``Authorization: Token <key>``.

Everything finepose sends to Label Studio (media downloads, stored predictions, the webhook's
prediction, prelabel, dataset import/export, the study) authenticates through
:func:`connection`. A token Label Studio refuses (invalid, expired, revoked, of the wrong
kind for the organization's settings) raises :class:`~ls_backend.errors.CredentialsError`
naming ``LABEL_STUDIO_API_KEY``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ls_backend.errors import (AccessRefused, ConfigError, CredentialsError, NotInStudio, StudioUnreachable,
                               UpstreamError)
from ls_backend.process import made_once

REFRESH_MARGIN_S = 60.0  # exchange the PAT again when the access token has less left than this
TIMEOUT_S = 30.0  # every request to Label Studio (the SDK's and finepose's own)
KEY_VARIABLE = "LABEL_STUDIO_API_KEY"


def connection(settings) -> "Connection":
    """The process-wide :class:`Connection` for ``settings.label_studio_url`` and
    ``settings.api_key``; :class:`CredentialsError` when either is missing."""
    url, key = settings.label_studio_url, settings.api_key
    if not url or not key:
        missing = " and ".join(n for n, v in (("LABEL_STUDIO_URL", url), (KEY_VARIABLE, key)) if not v)
        raise CredentialsError(f"finepose needs {missing} to reach Label Studio (media, predictions)")
    return _checked_connection(url, key)


@made_once
def _checked_connection(url: str, key: str) -> "Connection":
    """Checked once per process: a refused token is named at once (and not kept)."""
    found = Connection(url, key)
    found.check()
    return found


class Connection:
    """An authenticated label-studio-sdk client plus the ``Authorization`` header for the
    requests finepose makes itself (media downloads)."""

    def __init__(self, url: str, api_key: str, timeout: float = TIMEOUT_S, credential: str = KEY_VARIABLE):
        from label_studio_sdk.client import LabelStudio

        self.url = url.rstrip("/")
        self.credential = credential  # what the key is called in messages
        self._key = api_key.strip()
        self._lock = threading.Lock()
        self._tokens = None  # set below; None while the SDK refuses the key at once
        try:
            self.client = LabelStudio(base_url=self.url, api_key=self._key, timeout=timeout)
        except Exception as exc:  # the SDK refuses an expired or exp-less JWT at once (ApiError)
            raise self._refused(exc) from None
        # label-studio-sdk's own token manager (label_studio_sdk.tokens.client_ext.TokensClientExt):
        # it tells the kinds apart and performs the exchange; finepose adds the early refresh.
        self._tokens = self.client._client_wrapper._tokens_client

    @property
    def kind(self) -> str:
        """``"legacy"`` or ``"personal access token"``."""
        if self._tokens is None:  # refused before the SDK told the kinds apart: a JWT, so a PAT
            return "personal access token"
        return "legacy" if self._tokens._use_legacy_token else "personal access token"

    def access_token(self) -> str:
        """What to send: the legacy key, or a current access token exchanged for the PAT."""
        if self._tokens._use_legacy_token:
            return self._key
        with self._lock:
            expires = self._tokens._access_token_expiration
            if self._tokens._access_token is None or expires is None or expires.timestamp() - time.time() < REFRESH_MARGIN_S:
                self._exchange()
            return self._tokens._access_token

    def refresh(self) -> None:
        """Exchange the PAT for a new access token now (after a 401); no-op for legacy keys."""
        if not self._tokens._use_legacy_token:
            with self._lock:
                self._exchange()

    def authorization(self) -> str:
        """The ``Authorization`` header value: ``Token <key>`` or ``Bearer <access token>``."""
        token = self.access_token()
        return f"Token {token}" if self._tokens._use_legacy_token else f"Bearer {token}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization()}

    def sdk(self):
        """The label-studio-sdk client, its access token fresh for the next requests."""
        self.access_token()
        return self.client

    def check(self) -> dict:
        """Who the token belongs to (``/api/current-user/whoami``); CredentialsError if refused."""
        import requests

        response = requests.get(self.url + "/api/current-user/whoami", headers=self.headers(), timeout=TIMEOUT_S)
        if response.status_code in (401, 403):
            raise self.refused(response.status_code, response.text)
        response.raise_for_status()
        return response.json()

    def refused(self, status: int, detail: str = "") -> CredentialsError:
        """The error for a request Label Studio refused with ``status`` (401/403)."""
        if "legacy token authentication has been disabled" in detail:
            hint = ("legacy tokens are off in this organization (Organization -> API Tokens Settings): "
                    "use a Personal Access Token (Account & Settings -> Personal Access Token)")
        else:
            hint = "copy a valid Personal Access Token from Account & Settings -> Personal Access Token"
        return CredentialsError(
            f"Label Studio at {self.url} refused {self.credential} ({self.kind}): HTTP {status} "
            f"{one_line(detail)}; {hint}"
        )

    def _exchange(self) -> None:
        try:
            response = self._tokens.refresh()
        except Exception as exc:
            raise self._refused(exc) from None
        self._tokens._set_access_token(response.access)

    def _refused(self, exc: Exception) -> CredentialsError:
        status = getattr(exc, "status_code", None)
        body = getattr(exc, "body", None) or str(exc)
        if status is None:  # not an answer from Label Studio: unreachable, timeout, ...
            return StudioUnreachable(f"cannot reach Label Studio at {self.url} to exchange {self.credential}: {one_line(str(exc))}")
        return self.refused(status, str(body))


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_dict(item) -> dict:
    """An SDK object (pydantic model) or a dict, as a dict."""
    if isinstance(item, dict):
        return item
    return item.model_dump() if hasattr(item, "model_dump") else item.dict()


@contextmanager
def answered(what: str):
    """Label Studio's refusal of ``what`` (e.g. "project 7") as a one-line finepose error: 404
    :class:`NotInStudio`, anything else :class:`UpstreamError` with the status and Label
    Studio's words (the SDK's own message carries every HTTP header, cookies included)."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as exc:
        if exc.status_code == 404:
            raise NotInStudio(f"Label Studio has no {what} (HTTP 404), or this token may not see it") from None
        raise UpstreamError(f"Label Studio refused {what}: HTTP {exc.status_code} {one_line(exc.body)}") from None


def member_of(url: str, token: str, project_id: int, credential: str = "your Personal Access Token") -> dict:
    """Who owns ``token`` (a person's own Personal Access Token, or legacy token), checked once:
    Label Studio accepts it (``/api/current-user/whoami``) and lets that user read project
    ``project_id`` with it, so Label Studio decides who may work there. Returns whoami's
    answer (``id``, ``email``, ...). :class:`AccessRefused` (403) when Label Studio refuses
    the token or the project; :class:`UpstreamError` (502) when it cannot be asked; the
    token is not kept."""
    import requests

    if not url:
        raise ConfigError("LABEL_STUDIO_URL is not set: the backend cannot check an annotator's token")
    try:
        connection = Connection(url, token, credential=credential)
        me = connection.check()
        response = requests.get(f"{connection.url}/api/projects/{int(project_id)}", headers=connection.headers(),
                                timeout=TIMEOUT_S)
    except StudioUnreachable as exc:
        raise UpstreamError(str(exc)) from None
    except CredentialsError as exc:
        raise AccessRefused(str(exc)) from None
    except requests.HTTPError as exc:  # whoami answered, but not who the token is
        status = exc.response.status_code
        if status != 500:
            raise UpstreamError(f"Label Studio at {url} answered HTTP {status} to /api/current-user/whoami") from None
        # Label Studio 1.23 answers whoami with HTTP 500 for a person removed from the organization.
        raise AccessRefused(f"Label Studio did not confirm who {credential} belongs to (HTTP 500 on "
                            "/api/current-user/whoami); a person removed from the organization gets this answer") from None
    except requests.RequestException as exc:
        raise UpstreamError(f"cannot reach Label Studio at {url} to check {credential}: {one_line(str(exc))}") from None
    if response.status_code in (401, 403, 404):
        raise AccessRefused(f"Label Studio does not let {me.get('email') or 'this user'} open project {project_id} "
                            f"(HTTP {response.status_code}): ask the project's manager to add you to its organization")
    if not response.ok:
        raise UpstreamError(f"Label Studio at {url} answered HTTP {response.status_code} when asked for project "
                            f"{project_id}")
    return me


def get_project(client, project_id: int):
    """A project (the SDK's object); :class:`NotInStudio` when there is none."""
    with answered(f"project {project_id}"):
        return client.projects.get(id=int(project_id))


def users_by_email(client) -> dict[str, int]:
    """The organization's users: lower-case email -> user id."""
    with answered("the user list"):
        return {str(u.email).lower(): int(u.id) for u in client.users.list() if getattr(u, "email", None)}


def project_tasks(client, project_id: int) -> Iterator[dict]:
    """Every task of a project with its annotations and predictions (the SDK pages for us)."""
    for task in client.tasks.list(project=project_id, fields="all"):
        yield as_dict(task)


# --- single tasks and annotations (the pose editor) ------------------------------------------


def get_task(client, task_id: int, project_id: int | None = None) -> dict:
    """One task with its annotations and predictions; :class:`TaskError` (422) when Label
    Studio has no such task.

    With its ``project_id`` the task is read through the Data Manager's task list (filtered
    by id), which leaves predictions alone: Label Studio 1.23's ``GET /api/tasks/<id>`` asks
    the ML backend for a prediction of any task that has none yet, so reading a task there
    while it is being predicted stores a second copy."""
    from label_studio_sdk.core.api_error import ApiError

    from ls_backend.errors import TaskError

    try:
        if project_id is None:
            return as_dict(client.tasks.get(id=int(task_id)))
        query = _task_query("id", int(task_id))
        for task in client.tasks.list(project=int(project_id), query=query, fields="all"):
            found = as_dict(task)
            if int(found.get("id", -1)) == int(task_id):
                return {**found, "project": found.get("project") or int(project_id)}
    except ApiError as exc:
        raise TaskError(f"Label Studio has no task {task_id} (HTTP {exc.status_code})") from None
    raise TaskError(f"Label Studio has no task {task_id} in project {project_id}")


def project_label_config(client, project_id: int) -> str:
    """A project's labeling config (XML)."""
    return get_project(client, project_id).label_config


def merge_task_data(client, task_id: int, fields: dict, defaults: dict | None = None,
                    project_id: int | None = None) -> bool:
    """Set ``fields`` (and ``defaults`` where the task has no such key) in a task's data,
    keeping the rest as Label Studio holds it now (read just before the write, not a
    request's older copy, through :func:`get_task` with the ``project_id``, which triggers no
    prediction); False when nothing changed. Label Studio checks the data against the
    project's config."""
    current = dict(get_task(client, task_id, project_id).get("data") or {})
    merged = {**{k: v for k, v in (defaults or {}).items() if k not in current}, **current, **fields}
    if merged == current:
        return False
    client.tasks.update(id=int(task_id), data=merged)
    return True


def replace_predictions(client, task_id: int, prediction: dict, same) -> tuple[int, str]:
    """Make ``prediction`` the task's one prediction of its ``model_version``: when the task
    already holds one that ``same(stored, prediction)`` finds equal, keep it (``"unchanged"``),
    else store this one (``"stored"``); then delete the task's other predictions of that
    version (superseded: :func:`delete_predictions`). Returns (the kept prediction's id, what
    happened). Callers hold the task's lock (two replacements of one task must not overlap)."""
    version = prediction["model_version"]
    ours = [as_dict(p) for p in client.predictions.list(task=int(task_id))]
    ours = [p for p in ours if p.get("model_version") == version]
    kept = next((p["id"] for p in ours if same(p, prediction)), None)
    what = "unchanged"
    if kept is None:
        kept = client.predictions.create(task=int(task_id), result=prediction["result"], score=prediction["score"],
                                         model_version=version).id
        what = "stored"
    delete_predictions(client, [p["id"] for p in ours if p["id"] != kept])
    return kept, what


def delete_predictions(client, ids) -> list[int]:
    """Delete predictions one by one, after their replacement is stored; one already gone
    (404) or refused is logged and the rest go on. Returns the ids deleted."""
    import logging

    deleted = []
    for prediction_id in ids:
        try:
            client.predictions.delete(id=int(prediction_id))
            deleted.append(int(prediction_id))
        except Exception as exc:  # noqa: BLE001 (the SDK's ApiError, transport errors: logged, never fatal)
            logging.getLogger(__name__).warning("prediction %s was not deleted: %r", prediction_id, exc)
    return deleted


def update_annotation(client, annotation_id: int, result: list, unless_changed_from=None) -> bool:
    """Replace an annotation's result; its author (``completed_by``) stays. With
    ``unless_changed_from(result) -> bool``, the annotation is read first and left alone
    (False) when that finds its result changed since (a person saved again meanwhile)."""
    if unless_changed_from is not None:
        current = as_dict(client.annotations.get(id=int(annotation_id))).get("result")
        if unless_changed_from(current):
            return False
    client.annotations.update(id=int(annotation_id), result=result)
    return True


def create_annotation(client, task_id: int, result: list, lead_time: float | None = None,
                      completed_by: int | None = None) -> int:
    """A new annotation of a task with ``result``, credited to user ``completed_by`` (Label
    Studio's default: the token's owner); returns its id."""
    kwargs = {"lead_time": float(lead_time)} if lead_time is not None else {}
    if completed_by is not None:
        kwargs["completed_by"] = int(completed_by)
    with answered(f"an annotation of task {task_id}"):
        return client.annotations.create(id=int(task_id), result=result, **kwargs).id


def _task_query(column: str, value: int) -> str:
    """A Data Manager task-list query: tasks whose number ``column`` equals ``value``, in id order."""
    import json

    item = {"filter": f"filter:tasks:{column}", "operator": "equal", "type": "Number", "value": value}
    return json.dumps({"filters": {"conjunction": "and", "items": [item]}, "ordering": ["tasks:id"]})


def unannotated_task_ids(client, project_id: int):
    """Ids of a project's tasks without an annotation, in id order (the Data Manager's filter)."""
    query = _task_query("total_annotations", 0)
    for task in client.tasks.list(project=int(project_id), query=query, fields="task_only"):
        yield int(task.id)


def next_unannotated_task(client, project_id: int, after: int | None = None) -> int | None:
    """The first task without an annotation after task ``after`` (wrapping round to the
    first), or None when every task has one."""
    first = None
    for task_id in unannotated_task_ids(client, project_id):
        if after is None or task_id > after:
            return task_id
        if first is None and task_id != after:
            first = task_id
    return first


def set_instructions_block(client, project_id: int, key: str, html_text: str) -> None:
    """Put ``html_text`` (no ``</p>`` inside) into a project's labeling instructions as the
    paragraph of class ``key`` (replacing an earlier one, keeping the rest) and show the
    instructions. A class, because Label Studio 1.23 keeps it where it strips comments and
    ``data-`` attributes from instructions (blocks written before were unmarked: a project
    made then keeps them, shown once more)."""
    import re

    project = get_project(client, project_id)
    current = project.expert_instruction or ""
    block = f'<p class="{key}">{html_text}</p>'
    pattern = re.compile(rf'<p class="{re.escape(key)}">.*?</p>', re.S)
    text = pattern.sub(lambda _: block, current) if pattern.search(current) else block + current
    client.projects.update(id=int(project_id), expert_instruction=text, show_instruction=True)
