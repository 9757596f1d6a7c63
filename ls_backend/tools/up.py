"""``finepose up``: Label Studio and the backend on this machine, a user with a Personal Access
Token, and a project to annotate, in one command. Ctrl-C stops both; a second ``up`` with the
same ``--data`` folder reuses Label Studio's database, the user and the project.

Without ``--photos`` the project is a demo built only from what finepose ships, and says so:
a procedural car (``geometry.procedural``) photographed at known poses, synthetic photos with
their masks, served as Label Studio local files. With ``--photos``, ``--registry`` and
``--model`` it is the user's own project (``project create``).

Everything lives in ``--data`` (default ``finepose-up``): ``label-studio/`` (its database),
``files/`` (its local-files root), ``backend.log``, ``label-studio.log`` and ``up.json`` (the
login, the token and Label Studio's secret key; owner-only).

With ``label_studio_url`` it starts no Label Studio but uses the one there (docker compose's):
it logs in as the user that Label Studio created from ``LABEL_STUDIO_USERNAME`` and
``LABEL_STUDIO_PASSWORD`` (the same variables, given to both), and ``files/`` must be that Label
Studio's local-files root (a shared volume). ``backend_url`` is where Label Studio reaches the
backend, ``editor_url`` where browsers do.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ls_backend.errors import ConfigError
from ls_backend.studio import local_server

EMAIL = "annotator@finepose.local"
DEMO_TITLE = "finepose demo (synthetic car, made in code)"
DEMO_MODEL = "demo-car"
START_TIMEOUT_S = 300.0
#: What stops ``up``: Ctrl-C, and SIGTERM (``docker stop``, ``kill``) and SIGHUP (a closed terminal).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def demo_world(folder: Path) -> tuple[Path, Path, Path]:
    """A procedural car, its registry and three synthetic photos (red car on grey, at known
    poses) with masks; returns (registry, photos folder, masks folder)."""
    from geometry.masks import write_mask
    from geometry.mesh import save_mesh
    from geometry.pose import Pose
    from geometry.procedural import car_mesh
    from geometry.render import SilhouetteRenderer

    photos, masks = folder / "photos", folder / "masks"
    photos.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    mesh = car_mesh()
    save_mesh(folder / "demo_car.ply", mesh)
    registry = folder / "registry.json"
    registry.write_text(json.dumps({DEMO_MODEL: {"mesh": "demo_car.ply", "frame": "pascal3d", "category": "car"}}))
    renderer = SilhouetteRenderer(mesh)
    for k, (azimuth, elevation) in enumerate(((35.0, 12.0), (300.0, 18.0), (150.0, 10.0))):
        pose = Pose(azimuth=azimuth, elevation=elevation, theta=0.0, distance=2.6, focal=560.0, u=240.0, v=165.0,
                    width=480, height=320)
        mask = renderer.render(pose)
        picture = np.full((*mask.shape, 3), 90, np.uint8)
        picture[mask] = (200, 40, 40)
        Image.fromarray(picture).save(photos / f"demo{k}.png")
        write_mask(masks / f"demo{k}.png", mask)
    return registry, photos, masks


class Up:
    """The two servers and what they were started with."""

    def __init__(self, data: Path, ls_venv: Path, port: int, backend_port: int, *, label_studio_url: str | None = None,
                 backend_host: str = "127.0.0.1", backend_url: str | None = None, editor_url: str | None = None):
        self.data, self.ls_venv = Path(data).resolve(), Path(ls_venv).resolve()  # the servers run in data/
        self.attached = label_studio_url is not None  # to a Label Studio started elsewhere
        self.ls_url = (label_studio_url or f"http://127.0.0.1:{port}").rstrip("/")
        self.local_backend_url = f"http://127.0.0.1:{backend_port}"  # where up itself checks it
        self.backend_url = (backend_url or self.local_backend_url).rstrip("/")
        self.editor_url = (editor_url or self.backend_url).rstrip("/")
        self.port, self.backend_port, self.backend_host = port, backend_port, backend_host
        self.processes: list[subprocess.Popen] = []
        self.state_path = self.data / "up.json"

    def state(self, login: tuple[str, str] | None = None, api_key: str | None = None) -> dict:
        """The login, token and secret key of an earlier ``up`` in this folder, or new ones;
        ``login`` (email, password): the user of an attached Label Studio, ``api_key`` its
        token where the user gives one."""
        if login is not None:
            try:
                saved = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
            except (OSError, ValueError):
                saved = {}  # only its token is read back, and a new one can be made
            token = api_key or (saved.get("token") if isinstance(saved, dict) and saved.get("email") == login[0] else None)
            return {"email": login[0], "password": login[1], "secret_key": "", **({"token": token} if token else {}),
                    **({"given": True} if api_key else {})}
        if self.state_path.is_file():
            try:
                state = json.loads(self.state_path.read_text())
                if isinstance(state, dict) and all(isinstance(state.get(k), str) for k in ("email", "password", "secret_key")):
                    return state
            except (OSError, ValueError):
                pass
            raise ConfigError(f"{self.state_path} is unreadable: restore it, or remove {self.data} to start afresh")
        if (self.data / "label-studio" / "label_studio.sqlite3").exists():
            raise ConfigError(f"{self.data} holds a Label Studio database but no {self.state_path.name} (its login): "
                              f"restore it, or remove {self.data} to start afresh")
        return {"email": EMAIL, "password": "fp-" + secrets.token_urlsafe(12), "secret_key": secrets.token_urlsafe(40)}

    def save(self, state: dict) -> None:
        if self.attached:  # its password stays where the user keeps it (the environment)
            state = {k: v for k, v in state.items() if k != "password"}
        with open(os.open(self.state_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(state, f, indent=1)
        os.chmod(self.state_path, 0o600)

    def start_label_studio(self, state: dict) -> None:
        if not local_server.label_studio_bin(self.ls_venv).exists():
            raise ConfigError(f"Label Studio is not installed in {self.ls_venv}: run bash scripts/setup_label_studio.sh "
                              "(or give --label-studio VENV)")
        database = self.data / "label-studio" / "label_studio.sqlite3"
        database.parent.mkdir(parents=True, exist_ok=True)
        (self.data / "files").mkdir(exist_ok=True)
        version = local_server.installed_version(self.ls_venv)
        template = self.ls_venv / "finepose-template" / str(version) / "label_studio.sqlite3"
        if not database.exists() and template.is_file():  # a migrated empty database: starts in seconds
            shutil.copyfile(template, database)
        env = local_server.label_studio_env(self.data / "label-studio", self.data / "files", self.ls_venv,
                                            {"SECRET_KEY": state["secret_key"],
                                             **local_server.user_env(state["email"], state["password"])})
        command = local_server.start_command(self.ls_venv, self.port)
        self.processes.append(local_server.popen(command, env, self.data, self.data / "label-studio.log"))
        self.wait(self.ls_url, "Label Studio", self.processes[-1], self.data / "label-studio.log")

    def token(self, state: dict) -> str:
        """The saved Personal Access Token while Label Studio accepts it, else a new one."""
        from ls_backend.studio.client import Connection

        if state.get("token"):
            try:
                Connection(self.ls_url, state["token"]).check()
                return state["token"]
            except Exception:  # noqa: BLE001 (revoked, or a new database): make another
                if state.get("given"):
                    raise ConfigError(f"Label Studio at {self.ls_url} refuses LABEL_STUDIO_API_KEY: give the Personal "
                                      f"Access Token of {state['email']} (Account & Settings)") from None
        where = self.ls_url if self.attached else f"the Label Studio in {self.data}"
        try:
            session = local_server.login(self.ls_url, state["email"], state["password"])
            return local_server.personal_access_token(session, self.ls_url)
        except local_server.TokenExists:
            raise ConfigError(f"{state['email']} already has a Personal Access Token at {where}, and {self.state_path} "
                              "does not hold it (Label Studio keeps one per user): set LABEL_STUDIO_API_KEY to it, or "
                              "revoke it (Account & Settings -> Personal Access Token) and start again") from None
        except (RuntimeError, KeyError, ValueError, OSError) as exc:
            raise ConfigError(f"cannot log in to {where} as {state['email']}: {exc}") from None

    def start_backend(self, token: str, registry: Path) -> None:
        own = {k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD")}
        env = {**own, "LABEL_STUDIO_URL": self.ls_url, "LABEL_STUDIO_API_KEY": token,
               "FINEPOSE_REGISTRY": str(registry), "MODEL_DIR": str(self.data / "model-dir"),
               "FINEPOSE_EDITOR_URL": self.editor_url, "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.data / "files")}
        command = [sys.executable, "-m", "ls_backend.cli", "serve", "--host", self.backend_host,
                   "--port", str(self.backend_port)]
        self.processes.append(local_server.popen(command, env, self.data, self.data / "backend.log"))
        self.wait(self.local_backend_url, "the backend", self.processes[-1], self.data / "backend.log")

    def wait(self, url: str, name: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
        """Until ``url`` answers /health: a server ``up`` started (``process``, its ``log``), or
        an attached Label Studio (no process: it may still be migrating)."""
        started, where = time.monotonic(), f"; its log: {log}" if log else ""
        while True:
            if process is not None and process.poll() is not None:
                raise ConfigError(f"{name} stopped at start (exit {process.returncode}){where}")
            if local_server.healthy(url):
                return
            if time.monotonic() - started > START_TIMEOUT_S:
                raise ConfigError(f"{name} did not answer {url}/health within {START_TIMEOUT_S:.0f} s{where}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Each server's process group: SIGINT, then SIGTERM, then SIGKILL, each given its time.
        Nothing interrupts the stopping: a second Ctrl-C (or SIGTERM, SIGHUP) meanwhile moves on
        to the next, harder signal at once (before, it aborted here and left a server running)."""
        hurry: list[int] = []
        previous = {sig: signal.signal(sig, lambda signum, frame: hurry.append(signum)) for sig in STOP_SIGNALS}
        try:
            for process in reversed(self.processes):
                for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                    if process.poll() is not None:
                        break
                    try:
                        os.killpg(process.pid, sig)
                    except ProcessLookupError:
                        break
                    asked, deadline = len(hurry), time.monotonic() + wait
                    while process.poll() is None and time.monotonic() < deadline and len(hurry) == asked:
                        time.sleep(0.1)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.processes.clear()


def run_up(data: Path, ls_venv: Path, port: int, backend_port: int, *, photos: Path | None = None,
           registry: Path | None = None, model: str | None = None, masks: Path | None = None,
           title: str | None = None, say=print, until=None, links=None, label_studio_url: str | None = None,
           login: tuple[str, str] | None = None, api_key: str | None = None, backend_host: str = "127.0.0.1",
           backend_url: str | None = None, editor_url: str | None = None) -> dict:
    """Start everything, say how to log in (one JSON line), serve until Ctrl-C (or until
    ``until()`` is true), stop everything. Returns what was said. ``links``: writes the pose
    editor's links (see :func:`ls_backend.tools.project.create_project`). ``label_studio_url``
    with ``login`` (email, password) and optionally its ``api_key``: use that Label Studio
    instead of starting one; the other keywords: see :class:`Up`."""
    from ls_backend.settings import Settings
    from ls_backend.studio.client import Connection
    from ls_backend.registry import Registry
    from ls_backend.tools.project import create_project

    if photos is not None and (registry is None or model is None):
        raise ConfigError("your own photos need --registry and --model too")
    if photos is not None:
        from ls_backend.tools.project import photo_files

        photo_files(photos)
        Registry.load(registry).entry(model)
    if label_studio_url is not None and not (login and all(login)):
        raise ConfigError("a Label Studio of its own (--label-studio-url) needs its user: set LABEL_STUDIO_USERNAME and "
                          "LABEL_STUDIO_PASSWORD, as for that Label Studio")
    for wanted, flag in ((port, "--port"), (backend_port, "--backend-port"))[1 if label_studio_url else 0:]:
        if not local_server.port_free(wanted, backend_host if flag == "--backend-port" else "127.0.0.1"):
            raise ConfigError(f"port {wanted} is in use (another Label Studio or backend?): stop it or give {flag}")
    up = Up(data, ls_venv, port, backend_port, label_studio_url=label_studio_url, backend_host=backend_host,
            backend_url=backend_url, editor_url=editor_url)
    up.data.mkdir(parents=True, exist_ok=True)
    os.chmod(up.data, 0o700)  # Label Studio's database and the token live here
    state = up.state(login, api_key) if up.attached else up.state()
    up.save(state)
    # Ctrl-C, and SIGINT even where the shell started ``up`` with it ignored (``up &``), SIGTERM,
    # SIGHUP (a closed terminal): each stops both servers
    stop_on = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}
    try:
        up.wait(up.ls_url, "Label Studio") if up.attached else up.start_label_studio(state)
        state["token"] = up.token(state)
        up.save(state)
        if photos is None:
            registry, photos, masks = demo_world(up.data / "files" / "demo")
            model, title = DEMO_MODEL, DEMO_TITLE
        up.start_backend(state["token"], Path(registry).resolve())
        settings = Settings(label_studio_url=up.ls_url, api_key=state["token"], editor_url=up.editor_url,
                            local_files_document_root=(up.data / "files").resolve(), registry=Path(registry))
        made = create_project(Connection(up.ls_url, state["token"]), settings, Registry.load(registry),
                              title or "finepose", Path(photos), model=model, masks=masks, backend_url=up.backend_url,
                              links=links)
        said = {"label_studio": up.ls_url, "project": made["url"], "login": state["email"],
                "password": "(LABEL_STUDIO_PASSWORD)" if up.attached else state["password"],
                "backend": up.backend_url, "editor": up.editor_url, "demo": photos == up.data / "files" / "demo" / "photos",
                "pids": [p.pid for p in up.processes], "stop": "Ctrl-C",
                **({"warning": made["warning"]} if made.get("warning") else {})}
        say(json.dumps(said))
        while until is None or not until():
            if any(p.poll() is not None for p in up.processes):
                raise ConfigError(f"a server stopped; see {up.data / 'label-studio.log'} and {up.data / 'backend.log'}")
            time.sleep(1.0)
        return said
    except KeyboardInterrupt:
        return {"stopped": True}
    finally:
        up.stop()
        for sig, handler in stop_on.items():
            signal.signal(sig, handler)


def _interrupt(signum, frame) -> None:
    """SIGINT, SIGTERM and SIGHUP stop ``up`` as Ctrl-C does."""
    raise KeyboardInterrupt
