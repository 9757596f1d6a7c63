"""The editor's HTTP routes (Flask's test client): what the page reads, Refine, Auto,
Keypoints, Save (numbers on the project's steps, the projection), bad input answered 4xx,
and the backend's basic auth leaving the token-checked editor routes alone."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from flask import Flask
from PIL import Image

from geometry.camera import project
from geometry.iou import iou
from geometry.masks import resize_mask
from geometry.pose import PARAMETER_NAMES
from geometry.procedural_keypoints import car_keypoints
from ls_backend.server.app import create_app, error_handler
from ls_backend.studio.label_config import parse_label_config
from ls_backend.studio.predictions import filled
from ls_backend.studio.tasks import brush_mask
from ls_backend.editor import create_editor_blueprint, links, meshdata
from tests.support.world import make_world
from tests.support.editor_world import ANNOTATOR, ANNOTATOR_TOKEN, LocalSource, sign_in



@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("editor-api"), editor_secret="api-secret")


@pytest.fixture
def source(world):
    data = {"image": world.url("photo.png"), "model": "toy-car", "reference": world.url("reference.png"),
            "pose": world.start_pose.to_dict(), "editor": "", "finepose_error": ""}  # fmt: skip
    return LocalSource({1: {"data": dict(data)}, 2: {"data": dict(data)}}, world.label_config)


@pytest.fixture
def client(world, source):
    app = Flask("editor-api-test")
    app.register_blueprint(create_editor_blueprint(world.resources, source=source))
    app.register_error_handler(Exception, error_handler(world.resources))
    client = app.test_client()
    assert sign_in(client, 1, token(world)).status_code == 200
    return client


def token(world, task=1):
    return links.LinkSigner(world.settings).token(1, task)


def numbers(pose) -> dict:
    return {k: float(v) for k, v in zip(PARAMETER_NAMES, pose.vector())}


def test_state_photo_reference_and_mesh(client, world):
    t = token(world)
    state = client.get(f"/editor/1/state?t={t}").get_json()
    assert state["image"] == {"width": 480, "height": 320} and state["work"] == {"width": 300, "height": 200}
    assert state["start"] == {"pose": pytest.approx(numbers(world.start_pose)), "source": "data.pose", "notes": ""}
    assert state["reference"] == {"source": "data.reference", "available": True}
    assert set(state["keypoints"]) == set(car_keypoints()) and state["min_keypoints"] == 4
    assert state["steps"]["azimuth"] == "0.1" and state["nudges"]["azimuth"] == pytest.approx(180 / 100)
    photo = client.get(f"/editor/1/photo?t={t}")
    assert photo.mimetype == "image/png" and photo.data == (world.root / "photo.png").read_bytes()
    work = np.asarray(Image.open(io.BytesIO(client.get(f"/editor/1/reference.png?size=work&t={t}").data))) > 127
    assert np.array_equal(work, resize_mask(world.reference, 300, 200))
    full = np.asarray(Image.open(io.BytesIO(client.get(f"/editor/1/reference.png?t={t}").data))) > 127
    assert np.array_equal(full, world.reference)
    mesh = meshdata.decode(client.get(f"/editor/1/mesh.bin?t={t}").data)
    assert np.allclose(mesh.vertices, world.renderer.mesh.vertices, atol=1e-6)
    # the mesh drawn while the pose moves: the same one here (under MOVING_MAX_TRIANGLES)
    assert state["mesh"] == {"triangles": len(mesh.triangles), "moving_triangles": len(mesh.triangles)}
    moving = meshdata.decode(client.get(f"/editor/1/mesh.bin?level=moving&t={t}").data)
    assert np.array_equal(moving.triangles, mesh.triangles)
    wrong = client.get(f"/editor/1/mesh.bin?level=coarse&t={t}")
    assert wrong.status_code == 400 and "unknown mesh level 'coarse'" in wrong.get_json()["error"]


def test_refine_and_auto(client, world):
    t = token(world)
    refined = client.post(f"/editor/1/refine?t={t}", json={"pose": numbers(world.start_pose)}).get_json()
    assert refined["iou_after"] > 0.97 > refined["iou_before"]
    assert abs(refined["pose"]["azimuth"] - world.true_pose.azimuth) < 2
    auto = client.post(f"/editor/1/auto?t={t}").get_json()
    assert auto["hypotheses"] and auto["hypotheses"][0]["iou"] > 0.9
    assert {h["iou"] for h in auto["hypotheses"]} == set(sorted({h["iou"] for h in auto["hypotheses"]}, reverse=True))


def test_keypoints_fit(client, world):
    keypoints = car_keypoints()
    names = sorted(keypoints)[:6]
    clicks = dict(zip(names, project(world.true_pose, np.array([keypoints[n] for n in names])).tolist()))
    fitted = client.post(f"/editor/1/keypoints?t={token(world)}", json={"clicks": clicks}).get_json()
    assert abs(fitted["pose"]["azimuth"] - world.true_pose.azimuth) < 0.5 and fitted["rms_px"] < 1.0
    few = client.post(f"/editor/1/keypoints?t={token(world)}", json={"clicks": dict(list(clicks.items())[:3])})
    assert few.status_code == 422 and "at least 4" in few.get_json()["error"]


def test_save_stores_numbers_on_steps_and_the_projection(client, world, source):
    pose = replace(world.true_pose, azimuth=world.true_pose.azimuth + 360.123456, u=246.004)
    answer = client.post(f"/editor/1/save?t={token(world)}", json={"pose": numbers(pose), "lead_time": 42.5}).get_json()
    [annotation] = source.tasks[1]["annotations"]
    assert annotation["lead_time"] == 42.5 and answer["annotation"] == annotation["id"]
    assert annotation["completed_by"] == ANNOTATOR["id"]  # the signed-in person, not the backend's token
    saved = {r["from_name"]: r["value"]["number"] for r in annotation["result"] if r["type"] == "number"}
    config = parse_label_config(world.label_config)
    assert saved["azimuth"] == config.fit("azimuth", (world.true_pose.azimuth + 0.123456) % 360)
    assert saved["u"] == config.fit("u", 246.004)
    for name, value in saved.items():  # every number on its Number's grid
        step = config.specs[name].step
        assert abs(value / step - round(value / step)) < 1e-6, name
    [projection] = [r for r in annotation["result"] if r["type"] == "brushlabels"]
    assert projection["value"]["brushlabels"] == ["Projection"]
    assert iou(filled(brush_mask(projection)), world.reference) > 0.97  # an outline, as predictions draw it
    # the next task without an annotation, with its own link
    assert answer["next_task"] == 2 and "/editor/2?t=" in answer["next"]
    next_token = answer["next"].split("?t=")[1]
    assert links.LinkSigner(world.settings).for_task(next_token, 2).task == 2


@pytest.mark.parametrize("bad, status, words", [
    ({"pose": {"azimuth": 1}}, 422, "elevation"),
    ({"pose": {**{k: 1.0 for k in PARAMETER_NAMES}, "distance": float("nan")}}, 422, "distance"),
    ({"pose": {**{k: 1.0 for k in PARAMETER_NAMES}, "focal": -3.0}}, 422, "focal"),
    ({"pose": "north"}, 422, "pose"),
    (None, 400, "JSON object"),
])  # fmt: skip
def test_bad_input_answers_4xx(client, world, source, bad, status, words):
    kwargs = {"json": bad} if bad is not None else {"data": "not json", "content_type": "text/plain"}
    for action in ("refine", "save"):
        response = client.post(f"/editor/1/{action}?t={token(world)}", **kwargs)
        assert response.status_code == status and words in response.get_json()["error"], (action, response.get_json())
    assert not source.tasks[1].get("annotations")  # nothing was saved


def test_links_are_checked_on_every_route(client, world):
    other = token(world, task=2)
    for method, path in (("get", "state"), ("get", "photo"), ("get", "reference.png"), ("get", "mesh.bin"),
                         ("post", "refine"), ("post", "auto"), ("post", "keypoints"), ("post", "save")):  # fmt: skip
        for t in (other, "", "x.y"):
            response = getattr(client, method)(f"/editor/1/{path}?t={t}", json={})
            assert response.status_code == 403, (path, t)
            assert "Content-Security-Policy" in response.headers
    page = client.get(f"/editor/1?t={other}")
    assert page.status_code == 403 and b"not for task 1" in page.data


def test_basic_auth_leaves_the_editor_to_its_links(world):
    resources = type(world.resources)(replace(world.settings, basic_auth=("user", "pw")))
    app = create_app(resources).test_client()
    assert app.post("/predict", json={}).status_code == 401
    page = app.get(f"/editor/1?t={token(world)}")
    assert page.status_code == 200 and b'data-task="1"' in page.data
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self'")
    assert app.get("/editor/1").status_code == 403
    assert app.get("/editor/static/editor.js").status_code == 200


def test_the_page_and_its_state_name_no_server_path(world, tmp_path, monkeypatch):
    """A task without a reference on a machine without segmentation weights: the reason the
    editor shows names the weight file, not the server's folders; a start passed over is said."""
    import ls_backend.segmentation.models as segmentation

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("FINEPOSE_MASKRCNN_WEIGHTS", raising=False)
    segmentation._segmenter.forget()
    data = {"image": world.url("photo.png"), "model": "toy-car", "editor": "", "finepose_error": "",
            "pose": {**world.start_pose.to_dict(), "distance": -1}}
    source = LocalSource({3: {"data": data}}, world.label_config)
    app = Flask("editor-paths-test")
    app.register_blueprint(create_editor_blueprint(world.resources, source=source))
    app.register_error_handler(Exception, error_handler(world.resources))
    client = app.test_client()
    t = token(world, task=3)
    page, state = client.get(f"/editor/3?t={t}"), client.get(f"/editor/3/state?t={t}")
    assert page.status_code == 200 and state.status_code == 200, state.get_json()
    answer = state.get_json()
    assert answer["reference"]["available"] is False
    assert "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in answer["reference"]["source"]
    assert "data.pose not used" in answer["start"]["notes"] and answer["start"]["source"] == "default view"
    for body in (page.get_data(as_text=True), state.get_data(as_text=True)):
        assert str(tmp_path) not in body and str(world.root) not in body


def test_save_in_a_project_listing_its_models_picks_the_posed_one(world):
    """Uploaded photos get the config with a *CAD model* list (required): an annotation saved
    from the editor picks the model it posed there, as predictions do; before, the list came
    back empty and Label Studio asked for it again on Update."""
    from ls_backend.registry.label_config import label_config_for

    config, _ = label_config_for(world.resources.registry, default="toy-car")
    data = {"image": world.url("photo.png"), "model": "toy-car", "reference": world.url("reference.png")}
    source = LocalSource({1: {"data": data}}, config)
    app = Flask("editor-api-models")
    app.register_blueprint(create_editor_blueprint(world.resources, source=source))
    app.register_error_handler(Exception, error_handler(world.resources))
    client = app.test_client()
    sign_in(client, 1, token(world))
    answer = client.post(f"/editor/1/save?t={token(world)}", json={"pose": numbers(world.true_pose)})
    assert answer.status_code == 200, answer.get_json()
    [annotation] = source.tasks[1]["annotations"]
    [choice] = [r for r in annotation["result"] if r["type"] == "choices"]
    assert choice["from_name"] == "model" and choice["value"]["choices"] == ["toy-car"]


def test_saves_need_the_annotators_own_token_checked_once(world, source):
    """No session: 401 saying what to do, nothing saved. A token Label Studio refuses, or a
    person it does not let open the project: 403. Signed in: the state names the person, the
    cookie is signed and HttpOnly and holds no token, and saves are credited to them."""
    app = Flask("editor-sign-in")
    app.register_blueprint(create_editor_blueprint(world.resources, source=source))
    app.register_error_handler(Exception, error_handler(world.resources))
    client = app.test_client()
    t = token(world)
    pose = {"pose": numbers(world.true_pose)}
    refused = client.post(f"/editor/1/save?t={t}", json=pose)
    assert refused.status_code == 401 and "Personal Access Token" in refused.get_json()["error"]
    assert client.get(f"/editor/1/state?t={t}").get_json()["annotator"] is None
    source.people["outsider-token"] = ({"id": 9, "email": "outsider@finepose.test"}, {2})
    for bad, status, words in ((ANNOTATOR_TOKEN + "x", 403, "refused"), ("outsider-token", 403, "outsider@finepose.test"),
                               ("", 400, "Personal Access Token"), (None, 400, "token")):  # fmt: skip
        answer = client.post(f"/editor/1/session?t={t}", json={"token": bad})
        assert answer.status_code == status and words in answer.get_json()["error"], (bad, answer.get_json())
    assert client.post(f"/editor/1/save?t={t}", json=pose).status_code == 401
    assert not source.tasks[1].get("annotations")

    signed = sign_in(client, 1, t)
    assert signed.get_json() == {"annotator": ANNOTATOR}
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/editor" in cookie
    from ls_backend.editor.annotators import AnnotatorSessions

    held = AnnotatorSessions(world.settings).payload(cookie.split(";")[0].split("=", 1)[1])
    assert set(held) == {"user", "email", "projects", "exp"} and ANNOTATOR_TOKEN not in json.dumps(held)
    assert client.get(f"/editor/1/state?t={t}").get_json()["annotator"] == ANNOTATOR
    assert client.post(f"/editor/1/save?t={t}", json=pose).status_code == 200
    assert source.tasks[1]["annotations"][-1]["completed_by"] == ANNOTATOR["id"]

    # A forged cookie is no session; signing out ends it.
    value = client.get_cookie("finepose_annotator", path="/editor").value
    client.set_cookie("finepose_annotator", value[:-2] + "xx", path="/editor")
    assert client.post(f"/editor/1/save?t={t}", json=pose).status_code == 401
    sign_in(client, 1, t)
    assert client.delete(f"/editor/1/session?t={t}").status_code == 200
    assert client.post(f"/editor/1/save?t={t}", json=pose).status_code == 401
    assert len(source.tasks[1]["annotations"]) == 1


def test_a_session_is_for_the_projects_checked_and_expires():
    from ls_backend.editor.annotators import SESSION_SECONDS, AnnotatorSessions
    from ls_backend.settings import Settings

    now = [1000.0]
    sessions = AnnotatorSessions(Settings(editor_secret="k"), now=lambda: now[0])
    annotator = sessions.signed_in({}, {"id": 3, "email": "a@b"}, 5)
    response = Flask("x").response_class()
    sessions.set_cookie(response, annotator, secure=True)
    cookie = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert "Secure" in response.headers["Set-Cookie"]
    cookies = {"finepose_annotator": cookie}
    assert sessions.signed_in_for(cookies, 5).user == 3 and sessions.signed_in_for(cookies, 6) is None
    both = sessions.signed_in(cookies, {"id": 3, "email": "a@b"}, 6)
    assert both.projects == (5, 6)
    assert sessions.signed_in(cookies, {"id": 4, "email": "c@d"}, 6).projects == (6,)  # another person starts afresh
    other_key = AnnotatorSessions(Settings(editor_secret="other"), now=lambda: now[0])
    assert other_key.read(cookies) is None
    now[0] += SESSION_SECONDS + 1
    assert sessions.read(cookies) is None


def test_a_task_that_cannot_open_says_why_and_offers_a_model_and_the_next_task(world):
    """No model in an uploaded-photo project (its labeling config lists the models): the
    state says why, offers the registry's models and the next task; ``?model=`` opens it,
    and the save records the pick. A template project (no list) offers no pick."""
    from ls_backend.registry.label_config import label_config_for

    config, _ = label_config_for(world.resources.registry, default=None)
    data = {"image": world.url("photo.png"), "reference": world.url("reference.png")}
    source = LocalSource({1: {"data": dict(data)}, 2: {"data": dict(data)}}, config)
    app = Flask("editor-recovery")
    app.register_blueprint(create_editor_blueprint(world.resources, source=source))
    app.register_error_handler(Exception, error_handler(world.resources))
    client = app.test_client()
    t = token(world)
    failed = client.get(f"/editor/1/state?t={t}")
    answer = failed.get_json()
    assert failed.status_code == 422 and "names no CAD model" in answer["error"], answer
    assert answer["models"] == ["toy-car"] and "/editor/2?t=" in answer["next"]
    opened = client.get(f"/editor/1/state?t={t}&model=toy-car")
    assert opened.status_code == 200 and opened.get_json()["model"] == "toy-car"
    assert client.get(f"/editor/1/mesh.bin?t={t}&model=toy-car").status_code == 200
    unknown = client.get(f"/editor/1/state?t={t}&model=no-such-model")
    assert unknown.status_code == 422 and "'no-such-model' is not one this project" in unknown.get_json()["error"]
    sign_in(client, 1, t)
    saved = client.post(f"/editor/1/save?t={t}&model=toy-car", json={"pose": numbers(world.true_pose)})
    assert saved.status_code == 200, saved.get_json()
    [choice] = [r for r in source.tasks[1]["annotations"][0]["result"] if r["type"] == "choices"]
    assert choice["value"]["choices"] == ["toy-car"]

    # A template project names its model in data.model: a wrong one is the task's to fix.
    template = LocalSource({1: {"data": {**data, "model": "no-such-model"}}}, world.label_config)
    app = Flask("editor-recovery-template")
    app.register_blueprint(create_editor_blueprint(world.resources, source=template))
    app.register_error_handler(Exception, error_handler(world.resources))
    answer = app.test_client().get(f"/editor/1/state?t={t}").get_json()
    assert "no-such-model" in answer["error"] and answer["models"] == [] and answer["next"] is None
    refused = app.test_client().get(f"/editor/1/state?t={t}&model=toy-car")
    assert refused.status_code == 422 and "set task 1's data.model instead" in refused.get_json()["error"]
