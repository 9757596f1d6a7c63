"""A real Label Studio server for end-to-end tests.

Label Studio (pinned in ``scripts/setup_label_studio.sh``) lives in its own virtualenv
``.venv-ls`` because its pins clash with finepose's. The session fixture ``label_studio``
starts it once per pytest session on a free loopback port with a throw-away data directory
and stops it (the whole process group) at the end::

    # tests/e2e/conftest.py registers it once for the folder (importing it into each module
    # would start one server per module)

    @pytest.mark.e2e
    def test_something(label_studio):
        ls = label_studio
        client = ls.client()                                  # label_studio_sdk LabelStudio, admin
        project = client.projects.create(title="p", label_config=CONFIG)
        images = ls.local_storage(project.id, "p1")            # folder under ls.local_files_root
        (images / "a.png").write_bytes(png)                    #   registered as Local Files storage
        client.tasks.create(project=project.id, data={"image": ls.local_file_url(images / "a.png")})
        rater = ls.create_user("rater1@finepose.test")         # own password + API token
        rater.client().annotations.create(id=task_id, result=[...])  # completed_by == rater.id

Without ``.venv-ls`` the fixture skips, naming the setup script. ``start_label_studio`` /
``LabelStudioServer.stop`` can also be used directly (e.g. from a script).

Settings: Label Studio's defaults for tokens: legacy API tokens are OFF and each user
authenticates with a Personal Access Token (a JWT refresh token) that the user creates after
logging in, as Account & Settings -> Personal Access Token -> Create does (``POST /api/token/``
with the browser session). ``start_label_studio(token_kind="legacy")`` instead switches legacy
tokens on the way an administrator does (Organization -> API Tokens Settings,
``POST /api/jwt/settings``) and hands out each user's legacy token. Either way ``user.api_key``
is what a team puts into ``LABEL_STUDIO_API_KEY``; REST calls and SDK clients authenticate
through finepose's own ``ls_backend.studio.client.Connection``.
``ML_BLOCK_LOCAL_IP=false`` and ``SSRF_PROTECTION_ENABLED=false`` so that LS may call an ML
backend / webhook on 127.0.0.1; local-files serving is on, rooted at ``local_files_root``;
telemetry, Sentry and the PyPI version check are off.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from ls_backend.studio import local_server
from ls_backend.studio.local_server import login, personal_access_token, session_api

REPO = Path(__file__).resolve().parents[2]
LS_VENV = Path(os.environ.get("FINEPOSE_LS_VENV", REPO / ".venv-ls"))
LS_BIN = LS_VENV / "bin" / "label-studio"
SETUP_HINT = "bash scripts/setup_label_studio.sh"

ADMIN_EMAIL = "admin@finepose.test"
ADMIN_PASSWORD = "finepose-E2E-admin-pw1"
START_TIMEOUT_S = float(os.environ.get("FINEPOSE_LS_START_TIMEOUT", 300))


def label_studio_available() -> str | None:
    """None when Label Studio can be started, else the reason why not."""
    if not LS_BIN.exists():
        return f"Label Studio is not installed in {LS_VENV} (run: {SETUP_HINT})"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_token(session: requests.Session, url: str, kind: str) -> str:
    """The token a logged-in user copies into ``LABEL_STUDIO_API_KEY``: a new Personal Access
    Token (Account & Settings -> Personal Access Token -> Create), or the legacy token."""
    if kind != "legacy":
        return personal_access_token(session, url)
    r = session_api(session, url, "GET", "/api/current-user/token")
    if r.status_code >= 300:
        raise RuntimeError(f"cannot get a {kind} token: HTTP {r.status_code} {r.text[:300]}")
    return r.json()["token"]


@dataclass
class LabelStudioUser:
    """A Label Studio account: email (LS logs in by email), password, API token (a Personal
    Access Token, or the legacy token on a server started with ``token_kind="legacy"``)."""

    id: int
    email: str
    password: str
    api_key: str
    url: str

    @property
    def username(self) -> str:
        return self.email

    @property
    def connection(self):
        """finepose's authenticated connection with this user's token (exchanges a PAT)."""
        from ls_backend.studio.client import Connection

        if getattr(self, "_connection", None) is None:
            self._connection = Connection(self.url, self.api_key)
        return self._connection

    def client(self):
        return self.connection.sdk()

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """A raw REST call as this user (``Authorization: Bearer <access>`` or ``Token <key>``)."""
        headers = {**self.connection.headers(), **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 60)
        return requests.request(method, self.url + path, headers=headers, **kwargs)


@dataclass
class LabelStudioServer:
    url: str
    port: int
    api_key: str
    username: str  # the admin's email: Label Studio logs in by email
    password: str
    local_files_root: Path
    data_dir: Path
    log_path: Path
    token_kind: str = "pat"  # "pat" (Label Studio's default) or "legacy"
    process: subprocess.Popen | None = None
    start_seconds: float = 0.0
    users: list[LabelStudioUser] = field(default_factory=list)
    remove_on_stop: Path | None = None  # a temporary base directory start_label_studio made

    # --- clients ------------------------------------------------------------------------
    @property
    def admin(self) -> LabelStudioUser:
        return self.users[0]

    def client(self, api_key: str | None = None):
        """label_studio_sdk.client.LabelStudio for the admin (or for ``api_key``)."""
        from ls_backend.studio.client import Connection

        return self.admin.client() if api_key is None else Connection(self.url, api_key).sdk()

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """A raw REST call as the admin, for endpoints the SDK does not cover."""
        return self.admin.api(method, path, **kwargs)

    # --- users --------------------------------------------------------------------------
    def create_user(
        self, email: str, password: str | None = None, first_name: str = "", last_name: str = "",
        with_token: bool = True,
    ) -> LabelStudioUser:
        """A new member of the (single) organization with its own password and API token
        (none with ``with_token=False``: its ``id`` then stays 0).

        Goes through Label Studio's own sign-up form (as a person would), then creates the
        user's Personal Access Token with the session (or reads the legacy token, see
        ``token_kind``). Annotations created with ``user.client()`` are attributed to this user
        (``completed_by``).
        """
        password = password or "pw-" + secrets.token_hex(8) + "-E2E"
        s = requests.Session()
        s.get(self.url + "/user/signup/", timeout=60).raise_for_status()
        r = s.post(
            self.url + "/user/signup/",
            data={"email": email, "password": password, "csrfmiddlewaretoken": s.cookies.get("csrftoken", "")},
            headers={"Referer": self.url + "/user/signup/"},
            allow_redirects=False,
            timeout=60,
        )
        if r.status_code != 302:
            errors = re.findall(r'class="[^"]*error[^"]*"[^>]*>([^<]+)<', r.text)
            raise RuntimeError(f"sign-up of {email} failed: HTTP {r.status_code} {errors[:3]}")
        if not with_token:  # as a person who never opened Account & Settings
            user = LabelStudioUser(id=0, email=email, password=password, api_key="", url=self.url)
            self.users.append(user)
            return user
        token = user_token(s, self.url, self.token_kind)
        user = LabelStudioUser(id=0, email=email, password=password, api_key=token, url=self.url)
        me = user.api("GET", "/api/current-user/whoami")
        me.raise_for_status()
        user.id = me.json()["id"]
        if first_name or last_name:
            user.api(
                "PATCH", f"/api/users/{user.id}", json={"first_name": first_name, "last_name": last_name}
            ).raise_for_status()
        self.users.append(user)
        return user

    # --- local files --------------------------------------------------------------------
    def local_storage(self, project_id: int, subdir: str | None = None) -> Path:
        """A folder under ``local_files_root`` registered as the project's Local Files storage.

        Label Studio serves ``/data/local-files/?d=<relative path>`` only for files inside a
        Local Files import storage of a project the requesting user can see (and never the
        document root itself), so files for tasks go here. Not synced: tasks are imported
        explicitly, with ``local_file_url``.
        """
        folder = self.local_files_root / (subdir or f"project-{project_id}")
        folder.mkdir(parents=True, exist_ok=True)
        r = self.api(
            "POST",
            "/api/storages/localfiles/",
            json={"project": project_id, "path": str(folder), "title": folder.name, "use_blob_urls": False},
        )
        if r.status_code >= 300:
            raise RuntimeError(f"cannot add Local Files storage {folder}: HTTP {r.status_code} {r.text[:300]}")
        return folder

    def local_file_url(self, path: Path | str) -> str:
        """The task-data URL for a file under ``local_files_root`` (relative to the server)."""
        rel = Path(path).resolve().relative_to(self.local_files_root.resolve())
        return "/data/local-files/?d=" + quote(rel.as_posix())

    # --- lifecycle ------------------------------------------------------------------------
    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        """Stop the server: SIGTERM, then SIGKILL, to its process group. A throw-away server
        needs no graceful stop (its data is deleted). With SIGINT first (20 s allowed), the
        end of a CI run took about 20 s a server (301 s for 13, 40 s for 2); alone, a server
        stops in 1 s on SIGINT and 0.1 s on SIGTERM."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            _kill_group(proc, timeout)
        if self.remove_on_stop is not None:
            shutil.rmtree(self.remove_on_stop, ignore_errors=True)
            self.remove_on_stop = None


def _kill_group(proc: subprocess.Popen, timeout: float) -> None:
    pgid = os.getpgid(proc.pid)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # make sure nothing of the group outlives the server
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def installed_version() -> str | None:
    return local_server.installed_version(LS_VENV)


def template_db_path() -> Path:
    """Where a freshly migrated, empty Label Studio database is kept (inside .venv-ls)."""
    return LS_VENV / "finepose-template" / (installed_version() or "unknown") / "label_studio.sqlite3"


def ensure_template_db(timeout: float = START_TIMEOUT_S) -> Path:
    """Migrate an empty database once (~30-50 s on 2 cores) and keep it for later starts (~3-5 s).

    ``scripts/setup_label_studio.sh`` builds the same file; this is the fallback.
    """
    target = template_db_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="template-", dir=target.parent))
    try:
        package = next(LS_VENV.glob("lib/python*/site-packages/label_studio"))
        env = label_studio_env(work, work, {})
        subprocess.run(
            [str(LS_VENV / "bin" / "python"), "manage.py", "migrate", "--no-color", "-v0"],
            cwd=package, env=env, check=True, timeout=timeout,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.replace(work / "label_studio.sqlite3", target)  # atomic: parallel sessions are safe
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def label_studio_env(data_dir: Path, local_files_root: Path, extra: dict | None = None) -> dict:
    return local_server.label_studio_env(data_dir, local_files_root, LS_VENV, extra)


def start_label_studio(
    base_dir: Path | str | None = None, port: int | None = None, extra_env: dict | None = None,
    timeout: float = START_TIMEOUT_S, use_template: bool = True, token_kind: str = "pat",
) -> LabelStudioServer:
    """Start Label Studio with its default token settings, log the admin in and give it a
    Personal Access Token (``token_kind="pat"``), or switch legacy tokens on and use the
    admin's legacy token (``"legacy"``). Raises RuntimeError on failure.

    With ``use_template`` (default) a fresh data directory starts from a copy of a migrated
    empty database (see ``ensure_template_db``) instead of migrating for ~50 s on 2 cores.
    """
    reason = label_studio_available()
    if reason:
        raise RuntimeError(reason)
    base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="finepose-ls-"))
    data_dir, files_root = base / "data", base / "files"
    data_dir.mkdir(parents=True, exist_ok=True)
    files_root.mkdir(parents=True, exist_ok=True)
    db = data_dir / "label_studio.sqlite3"
    if use_template and not db.exists():
        try:
            shutil.copyfile(ensure_template_db(timeout), db)
        except (OSError, subprocess.SubprocessError) as exc:  # fall back to migrating on start
            print(f"finepose: no template Label Studio database ({exc}); migrating on start")
    port = port or free_port()
    if token_kind not in ("pat", "legacy"):
        raise ValueError(f"token_kind must be 'pat' or 'legacy', got {token_kind!r}")
    url = f"http://127.0.0.1:{port}"
    log_path = base / "label-studio.log"
    cmd = [
        str(LS_BIN), "start", "--no-browser",
        "--internal-host", "127.0.0.1", "--port", str(port),
        "--username", ADMIN_EMAIL, "--password", ADMIN_PASSWORD, "--log-level", "WARNING",
    ]  # fmt: skip
    t0 = time.monotonic()
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd, cwd=base, env=label_studio_env(data_dir, files_root, extra_env),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=local_server.die_with_parent,
            )  # fmt: skip
    except BaseException:
        if not base_dir:
            shutil.rmtree(base, ignore_errors=True)
        raise
    server = LabelStudioServer(
        url=url, port=port, api_key="", username=ADMIN_EMAIL, password=ADMIN_PASSWORD,
        local_files_root=files_root, data_dir=data_dir, log_path=log_path, process=proc,
        remove_on_stop=None if base_dir else base, token_kind=token_kind,
    )  # fmt: skip
    atexit.register(server.stop)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {proc.returncode}:\n{server.log_tail()}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"Label Studio not ready after {timeout:.0f} s:\n{server.log_tail()}")
            try:
                if requests.get(url + "/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        session = login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
        if token_kind == "legacy":  # Organization -> API Tokens Settings: legacy tokens on
            r = session_api(session, url, "POST", "/api/jwt/settings",
                            json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": True})
            if r.status_code >= 300:
                raise RuntimeError(f"cannot enable legacy tokens: HTTP {r.status_code} {r.text[:300]}")
        token = user_token(session, url, token_kind)
        admin = LabelStudioUser(id=0, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, api_key=token, url=url)
        r = admin.api("GET", "/api/current-user/whoami", timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"Label Studio rejects the admin's {token_kind} token: {r.status_code} {r.text[:300]}")
        admin.id = r.json()["id"]
        server.api_key = token
        server.users.append(admin)
    except BaseException:
        server.stop()
        raise
    server.start_seconds = time.monotonic() - t0
    (base / "server.json").write_text(json.dumps({"url": url, "api_key": token, "token_kind": token_kind, "pid": proc.pid}))
    return server


def _serve(tmp_path_factory, token_kind: str):
    reason = label_studio_available()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp(f"label-studio-{token_kind}")
    server = start_label_studio(base, token_kind=token_kind)
    try:
        yield server
    finally:
        server.stop()
        if os.environ.get("FINEPOSE_LS_KEEP") != "1":
            shutil.rmtree(base / "data", ignore_errors=True)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A running Label Studio with default token settings (PATs) for the whole session."""
    yield from _serve(tmp_path_factory, "pat")


@pytest.fixture(scope="session")
def label_studio_legacy(tmp_path_factory):
    """A second Label Studio whose organization has legacy tokens switched on."""
    yield from _serve(tmp_path_factory, "legacy")


class RecordingBackend:
    """A throw-away HTTP server on 127.0.0.1 that records what Label Studio sends to it.

    It answers like a minimal ML backend (``/health``, ``/setup``, ``/predict``, ``/webhook``,
    ``/versions``) and accepts anything else (e.g. a webhook URL) with ``{}``. ``responses``
    maps a path to a callable ``(json_body) -> (status, json)`` to change the answers.
    Each request is recorded as ``{"method", "path", "query", "headers", "json", "body"}``.
    """

    def __init__(self, predict=None):
        import threading

        from flask import Flask, jsonify, request
        from werkzeug.serving import make_server

        self.requests: list[dict] = []
        self.predict = predict or (lambda body: [])  # tasks -> list of {"result", "score", "model_version"}
        self.responses: dict = {}
        self._lock = threading.Lock()
        app = Flask("finepose-recording-backend")

        @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        @app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        def record(path):
            body = request.get_data(as_text=True)
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            entry = {
                "method": request.method,
                "path": "/" + path,
                "query": request.query_string.decode(),
                "headers": {k: v for k, v in request.headers.items()},
                "json": parsed,
                "body": body if parsed is None else None,
            }
            with self._lock:
                self.requests.append(entry)
            key = "/" + path
            if key in self.responses:
                status, answer = self.responses[key](parsed)
                return jsonify(answer), status
            if key == "/health":
                return jsonify({"status": "UP", "model_class": "RecordingBackend"})
            if key == "/setup":
                return jsonify({"model_version": "recorder-0.1"})
            if key == "/predict":
                return jsonify({"results": self.predict(parsed), "model_version": "recorder-0.1"})
            if key == "/versions":
                return jsonify({"versions": ["recorder-0.1"], "model_dir": ""})
            return jsonify({})

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def find(self, path: str, method: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path and (method is None or r["method"] == method)]

    def wait_for(self, path: str, count: int = 1, timeout: float = 30) -> list[dict]:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            found = self.find(path)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise TimeoutError(f"no {count} request(s) to {path} within {timeout} s; got {[r['path'] for r in self.requests]}")

    def close(self) -> None:
        self._server.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_until(check, timeout: float = 120.0, what: str = "condition"):
    """Poll ``check()`` until it returns something truthy (returned); AssertionError naming
    ``what`` after ``timeout`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def numbers(result) -> dict:
    """The Number results of an annotation or prediction, ``{from_name: value}``."""
    return {r["from_name"]: r["value"]["number"] for r in result if r["type"] == "number"}


def template_project(ls, world, title: str, template: str = "pose_annotation.xml"):
    """A project from one of finepose's templates, with the world's photo and reference in a
    Local Files storage; returns (project, task data pointing at them)."""
    from ls_backend.studio.taskdata import import_fields
    from ls_backend.templates import read_template

    project = ls.client().projects.create(title=title, label_config=read_template(template))
    folder = ls.local_storage(project.id, title.replace(" ", "-"))
    for name in ("photo.png", "reference.png"):
        shutil.copy(world.root / name, folder / name)
    data = {"image": ls.local_file_url(folder / "photo.png"), "model": "toy-car",
            "reference": ls.local_file_url(folder / "reference.png"), **import_fields(read_template(template))}
    return project, data
