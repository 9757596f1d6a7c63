"""A Label Studio on this machine, as ``finepose up`` and the end-to-end tests run it.

Label Studio 1.23.2 lives in its own virtualenv (``scripts/setup_label_studio.sh`` makes
``.venv-ls``; its pins clash with finepose's). It starts with its default settings plus what
finepose needs on one machine: ``ML_BLOCK_LOCAL_IP=false`` and ``SSRF_PROTECTION_ENABLED=false``
(Label Studio may call a backend on 127.0.0.1), local-files serving rooted at a given folder,
no telemetry. A user logs in through Label Studio's own form and creates a Personal Access
Token as *Account & Settings -> Personal Access Token -> Create* does (``POST /api/token/``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import requests

TIMEOUT_S = 60.0


def label_studio_bin(venv: Path) -> Path:
    return Path(venv) / "bin" / "label-studio"


def label_studio_env(data_dir: Path, local_files_root: Path, venv: Path, extra: dict | None = None) -> dict:
    """The environment Label Studio runs with (this process's, without Django/Label Studio
    variables of its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LABEL_STUDIO_", "VIRTUAL_ENV"))}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        ML_BLOCK_LOCAL_IP="false",
        SSRF_PROTECTION_ENABLED="false",
        LOCAL_FILES_SERVING_ENABLED="true",
        LOCAL_FILES_DOCUMENT_ROOT=str(local_files_root),
        COLLECT_ANALYTICS="false",
        LATEST_VERSION_CHECK="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        SECRET_KEY=(extra or {}).get("SECRET_KEY") or secrets.token_urlsafe(40),
        PYTHONUNBUFFERED="1",
        PATH=f"{Path(venv) / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
    )
    env.update(extra or {})
    return env


def start_command(venv: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """``label-studio start`` serving on ``host:port`` (the user: :func:`user_env`)."""
    return [str(label_studio_bin(venv)), "start", "--no-browser", "--internal-host", host, "--port", str(port),
            "--log-level", "WARNING"]


def user_env(email: str, password: str) -> dict:
    """The user the first start creates, through the environment (not the command line,
    which every local user can read)."""
    return {"LABEL_STUDIO_USERNAME": email, "LABEL_STUDIO_PASSWORD": password}


def installed_version(venv: Path) -> str | None:
    found = sorted(Path(venv).glob("lib/python*/site-packages/label_studio-*.dist-info"))
    return found[-1].name.removesuffix(".dist-info").split("-")[1] if found else None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def login(url: str, email: str, password: str) -> requests.Session:
    """A browser-like session logged in through Label Studio's login form."""
    s = requests.Session()
    s.get(url + "/user/login/", timeout=TIMEOUT_S).raise_for_status()
    r = s.post(
        url + "/user/login/",
        data={"email": email, "password": password, "csrfmiddlewaretoken": s.cookies.get("csrftoken", "")},
        headers={"Referer": url + "/user/login/"}, allow_redirects=False, timeout=TIMEOUT_S,
    )  # fmt: skip
    if r.status_code != 302:
        raise RuntimeError(f"login of {email} failed: HTTP {r.status_code}")
    return s


def session_api(session: requests.Session, url: str, method: str, path: str, **kwargs) -> requests.Response:
    """A REST call with the browser session (CSRF header, as Label Studio's own pages send)."""
    headers = {"X-CSRFToken": session.cookies.get("csrftoken", ""), "Referer": url + "/", **kwargs.pop("headers", {})}
    return session.request(method, url + path, headers=headers, timeout=TIMEOUT_S, **kwargs)


class TokenExists(RuntimeError):
    """The user already has a Personal Access Token (Label Studio allows one at a time)."""


def personal_access_token(session: requests.Session, url: str) -> str:
    """A new Personal Access Token of the logged-in user (:class:`TokenExists` when there is one)."""
    r = session_api(session, url, "POST", "/api/token/", json={})
    if r.status_code == 409:
        raise TokenExists(r.text[:300])
    if r.status_code >= 300:
        raise RuntimeError(f"cannot create a Personal Access Token: HTTP {r.status_code} {r.text[:300]}")
    return r.json()["token"]


def healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def popen(command: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    """A server process in a session of its own (stopped as a group), its output to ``log``,
    that gets SIGTERM when this process dies however it dies (Linux: no orphaned servers)."""
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)


def die_with_parent() -> None:
    """In a child before exec: SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass
