"""The editor's parts without a browser: signed links, step rounding, the mesh payload, the
vendored three.js, and camera.js (run by Node.js) against geometry.camera."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from geometry.camera import project
from geometry.conventions.seed import MESH_FRAME
from geometry.pose import Pose
from geometry.procedural import car_mesh
from ls_backend.editor import links, meshdata
from ls_backend.errors import ConfigError, LinkError
from ls_backend.settings import Settings
from ls_backend.templates import POSE_ANNOTATION, read_template

STATIC = Path(__file__).resolve().parents[2] / "ls_backend" / "editor" / "static"
SETTINGS = Settings(editor_secret="unit-secret", editor_link_seconds=3600)


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_task_link_opens_its_task_only():
    signer = links.LinkSigner(SETTINGS)
    token = signer.token(project=3, task=17)
    assert signer.for_task(token, 17) == links.Claims(3, 17, pytest.approx(signer._now() + 3600, abs=2))
    with pytest.raises(LinkError, match="not for task 18"):
        signer.for_task(token, 18)
    with pytest.raises(LinkError, match="not the editor link of project"):
        signer.for_project(token, 3)


def test_forged_damaged_and_foreign_tokens_are_refused():
    signer = links.LinkSigner(SETTINGS)
    token = signer.token(project=3, task=17)
    payload, signature = token.rsplit(".", 1)
    other = links.LinkSigner(replace(SETTINGS, editor_secret="another"))
    for bad in (payload + "." + signature[::-1], token[:-1], "", None, "abc", other.token(project=3, task=17)):
        with pytest.raises(LinkError):
            signer.for_task(bad, 17)
    # a token re-signed by nobody cannot claim another task: the payload is covered by the signature
    import base64

    forged_payload = base64.urlsafe_b64encode(json.dumps({"project": 3, "exp": 9e9, "task": 18}).encode()).decode().rstrip("=")
    with pytest.raises(LinkError):
        signer.for_task(f"{forged_payload}.{signature}", 18)


def test_links_expire():
    clock = Clock()
    signer = links.LinkSigner(SETTINGS, now=clock)
    token = signer.token(project=1, task=2)
    clock.t += 3599
    assert signer.for_task(token, 2).task == 2
    clock.t += 2
    with pytest.raises(LinkError, match="expired"):
        signer.for_task(token, 2)


def test_secret_comes_from_the_settings_or_the_api_key():
    with pytest.raises(ConfigError, match="FINEPOSE_EDITOR_SECRET"):
        links.LinkSigner(Settings())
    a = links.LinkSigner(Settings(api_key="key-a")).token(1, 1)
    assert links.LinkSigner(Settings(api_key="key-a")).for_task(a, 1).task == 1
    with pytest.raises(LinkError):
        links.LinkSigner(Settings(api_key="key-b")).for_task(a, 1)


def test_settings_read_the_editor_variables():
    s = Settings.from_env({"FINEPOSE_EDITOR_URL": "https://pose.example/", "FINEPOSE_EDITOR_SECRET": "s",
                           "FINEPOSE_EDITOR_LINK_S": "60"})  # fmt: skip
    assert (s.editor_url, s.editor_secret, s.editor_link_seconds) == ("https://pose.example", "s", 60)
    with pytest.raises(ConfigError, match="FINEPOSE_EDITOR_URL"):
        Settings.from_env({"FINEPOSE_EDITOR_URL": "pose.example"})


def test_link_field_round_trip_and_renewal():
    """The editor field holds a plain URL (the Data Manager shows it as text; the template
    builds the anchor); an older HTML link is still read."""
    clock = Clock()
    signer = links.LinkSigner(SETTINGS, now=clock)
    url = links.task_url("http://b:9090", signer, 1, 5)
    assert links.link_in(url) == url and links.link_in(links.link_html(url)) == url
    data = {"editor": url, "finepose_error": ""}
    assert not links.needs_link(data, signer, 5, "http://b:9090")
    assert links.needs_link({"editor": links.link_html(url), "finepose_error": ""}, signer, 5, "http://b:9090")  # old HTML
    assert links.needs_link({"editor": url}, signer, 5, "http://b:9090")  # the field the template shows beside it
    assert links.needs_link(data, signer, 6, "http://b:9090")  # another task's link
    assert links.needs_link(data, signer, 5, "http://other:9090")  # another backend URL
    assert links.needs_link({"editor": ""}, signer, 5, "http://b:9090")
    clock.t += 1801  # past half its life: renewed before it can expire
    assert links.needs_link(data, signer, 5, "http://b:9090")


def test_template_needs_the_editor_fields_at_import():
    from ls_backend.studio.taskdata import import_fields

    assert import_fields(read_template(POSE_ANNOTATION)) == {"editor": "", "finepose_error": ""}
    assert import_fields(read_template("satisfaction_study.xml")) == {}


def test_mesh_payload_round_trip_and_decimation():
    mesh = car_mesh()
    back = meshdata.decode(meshdata.encode(mesh))
    assert np.allclose(back.vertices, mesh.vertices, atol=1e-6) and np.array_equal(back.triangles, mesh.triangles)
    small = meshdata.display_mesh(mesh, max_triangles=len(mesh.triangles) // 2)
    assert len(small.triangles) <= len(mesh.triangles) // 2
    assert meshdata.display_mesh(mesh) is mesh  # under the limit: the mesh itself


def test_the_mesh_drawn_while_moving_keeps_the_silhouette():
    """Pascal3D+ car06 (30,096 triangles) decimated to MOVING_MAX_TRIANGLES: its silhouette at
    a gesture's size (0.4 of a 1200x800 photo) against the full mesh's, 8 views."""
    from geometry.iou import iou
    from geometry.mesh import load_mesh
    from geometry.render import SilhouetteRenderer
    from tests.editor.test_editor_exactness import random_poses
    from tests.support.data import DATA

    path = DATA / "meshes" / "pascal3d_off" / "car06.off"
    if not path.exists():
        pytest.skip(f"needs the Pascal3D+ meshes in {path.parent} (../shared/data)")
    mesh = load_mesh(path)
    coarse = meshdata.display_mesh(mesh, meshdata.MOVING_MAX_TRIANGLES)
    assert len(coarse.triangles) <= meshdata.MOVING_MAX_TRIANGLES < len(mesh.triangles)
    full, moving = SilhouetteRenderer(mesh), SilhouetteRenderer(coarse)
    poses = [p.rescaled(480, 320) for p in random_poses(mesh.radius, 8, seed=3)]
    scores = [iou(full.render(p), moving.render(p)) for p in poses]
    print("moving mesh %d of %d triangles: silhouette IoU min %.4f" % (len(coarse.triangles), len(mesh.triangles), min(scores)))
    assert min(scores) >= 0.98, scores


def test_vendored_three_js_is_the_pinned_release_unchanged():
    folder = STATIC / "vendor" / "three"
    manifest = json.loads((folder / "vendor.json").read_text())
    assert manifest["version"] == "0.187.0"
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (folder / "LICENSE").read_text()
    assert "REVISION = '187'" in (folder / "three.core.js").read_text()
    # the page loads scripts from the backend only: script sources and module imports are relative
    import re

    html = (STATIC / "editor.html").read_text()
    sources = re.findall(r'<script[^>]*src="([^"]+)"', html) + re.findall(r'<link[^>]*href="([^"]+)"', html)
    imports = [m for name in ("editor.js", "camera.js", "vendor/three/three.module.js")
               for m in re.findall(r"^import .*? from '([^']+)'", (STATIC / name).read_text(), re.M)]  # fmt: skip
    assert sources and imports
    assert all(s.startswith(("static/", "data:")) for s in sources), sources
    assert all(m.startswith("./") for m in imports), imports


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize("frame", [np.eye(3), MESH_FRAME], ids=["pascal3d", "release-mirrored"])
def test_camera_js_projects_like_geometry_camera(frame, tmp_path, rng):
    pose = Pose(azimuth=213.7, elevation=-17.2, theta=9.5, distance=4.2, focal=812.0, u=301.25, v=188.75,
                width=640, height=480, mesh_frame=frame)  # fmt: skip
    points = rng.normal(size=(20, 3))
    script = tmp_path / "check.mjs"
    script.write_text(f"import {{ project }} from '{(STATIC / 'camera.js').as_uri()}';\n"
                      "const [pose, points] = JSON.parse(process.argv[2]);\n"
                      "console.log(JSON.stringify(project(pose, pose.frame, points)));\n")  # fmt: skip
    arg = json.dumps([{**pose.to_dict(), "frame": frame.tolist()}, points.tolist()])
    out = subprocess.run(["node", str(script), arg], capture_output=True, text=True, check=True, timeout=60)
    assert np.abs(np.array(json.loads(out.stdout)) - project(pose, points)).max() < 1e-9


def test_every_static_file_is_package_data():
    """pyproject's package-data globs ship every file of the page (a wheel without them serves 404s)."""
    import fnmatch
    import tomllib

    pyproject = tomllib.loads((STATIC.parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["ls_backend.editor"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) and name.count("/") == pattern.count("/") for pattern in patterns), name
