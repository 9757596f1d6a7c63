"""docker/docker-compose.yml read as compose would, checked against finepose itself (no Docker
engine runs here; tests/e2e/test_up_e2e.py runs the same ``finepose up`` command on loopback):
the backend's command parses with finepose's own CLI, Label Studio reaches it by its service
name, both services restart and share the login and the local-files folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from ls_backend.cli.main import build_parser

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker" / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def mounts(service: str) -> dict[str, str]:
    """Container path -> volume or host path."""
    return {m.split(":")[1]: m.split(":")[0] for m in SERVICES[service]["volumes"]}


def test_the_backend_runs_finepose_up_with_this_label_studio_and_its_service_name():
    command = SERVICES["finepose"]["command"]
    assert command[0] == "finepose"
    args = build_parser().parse_args(command[1:])
    assert args.func.__name__ == "cmd_up"
    assert args.label_studio_url == "http://label-studio:8080" and args.backend_host == "0.0.0.0"
    assert args.backend_url == f"http://finepose:{args.backend_port}"  # the service name, the port it listens on
    assert f"{args.backend_port}:{args.backend_port}" in SERVICES["finepose"]["ports"]
    assert args.editor_url == f"http://localhost:{args.backend_port}"  # where a browser on the host reaches it
    ls_files = SERVICES["label-studio"]["environment"]["LOCAL_FILES_DOCUMENT_ROOT"]
    assert mounts("label-studio")[ls_files] == mounts("finepose")[f"{args.data}/files"]  # one folder, two paths


def test_both_services_restart_share_the_login_and_wait_for_each_other():
    for name in ("label-studio", "finepose"):
        assert SERVICES[name]["restart"] == "unless-stopped"
        env = SERVICES[name]["environment"]
        assert {"LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD"} <= set(env)
    assert SERVICES["label-studio"]["environment"]["LABEL_STUDIO_PASSWORD"].startswith("${LABEL_STUDIO_PASSWORD:?")
    assert SERVICES["finepose"]["depends_on"]["label-studio"]["condition"] == "service_healthy"
    assert "healthcheck" in SERVICES["label-studio"]
    env = SERVICES["label-studio"]["environment"]
    assert env["ML_BLOCK_LOCAL_IP"] == "false" and env["SSRF_PROTECTION_ENABLED"] == "false"
    init = SERVICES["volumes-init"]
    assert SERVICES["finepose"]["depends_on"]["volumes-init"]["condition"] == "service_completed_successfully"
    assert set(mounts("volumes-init")) == set(mounts("finepose"))  # every volume finepose writes to is its own
    assert init["command"][:2] == ["chown", "-R"]


def test_the_own_project_override_shows_one_folder_to_both_and_names_it_to_up():
    override = yaml.safe_load((Path(__file__).parents[2] / "docker" / "own-project.yml").read_text())["services"]
    base = build_parser().parse_args(SERVICES["finepose"]["command"][1:])
    args = build_parser().parse_args(override["finepose"]["command"][1:])
    for option in ("data", "label_studio_url", "backend_host", "backend_port", "backend_url", "editor_url"):
        assert getattr(args, option) == getattr(base, option), option  # only the project differs
    ls_files = SERVICES["label-studio"]["environment"]["LOCAL_FILES_DOCUMENT_ROOT"]
    (host_ls, in_ls), = [m.split(":")[:2] for m in override["label-studio"]["volumes"]]
    (host_fp, in_fp), = [m.split(":")[:2] for m in override["finepose"]["volumes"]]
    assert host_ls == host_fp and Path(in_ls).relative_to(ls_files) == Path(in_fp).relative_to(args.data / "files")
    assert str(args.photos).startswith(in_fp) and str(args.registry).startswith(in_fp)
    assert args.model.startswith("${FINEPOSE_MODEL:?")


def test_nothing_a_container_writes_or_mounts_into_is_read_only():
    """own-project.yml mounts a folder inside Label Studio's files volume (Docker makes the
    mount point there: not on a read-only mount), and the weights are downloaded into the
    torch volume from inside the container."""
    for name in ("label-studio", "finepose"):
        assert not [m for m in SERVICES[name]["volumes"] if m.endswith(":ro")], name
    assert mounts("finepose")["/data/torch"] == "torch" and "/data/torch" in mounts("volumes-init")
    assert SERVICES["finepose"]["environment"]["TORCH_HOME"] == "/data/torch"
