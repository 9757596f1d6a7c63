"""Security and load: basic auth, where media may come from, size limits, concurrent requests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import requests
from flask import Flask, redirect, send_file

from ls_backend.server.app import create_app
from ls_backend.resources import Resources
from tests.support.world import make_world
from tests.support.backend_client import serving


def media_app(root):
    app = Flask("media")
    app.add_url_rule("/photo.png", "photo", lambda: send_file(root / "photo.png"))
    app.add_url_rule("/reference.png", "reference", lambda: send_file(root / "reference.png"))
    app.add_url_rule("/here", "here", lambda: redirect("/reference.png"))
    return app


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("security"))


def body(world, task):
    return {"tasks": [task], "label_config": world.label_config, "project": "1.1"}


def with_settings(world, **changes):
    return create_app(Resources(replace(world.settings, **changes))).test_client()


def test_basic_auth_guards_every_endpoint_but_health(world):
    client = with_settings(world, basic_auth=("ann", "s3cret"))
    assert client.get("/health").status_code == 200
    for method, path in [("get", "/"), ("post", "/setup"), ("post", "/predict"), ("post", "/webhook"), ("get", "/metrics")]:
        assert getattr(client, method)(path, json={}).status_code == 401, path
        wrong = getattr(client, method)(path, json={}, auth=("ann", "wrong"))
        assert wrong.status_code == 401, path
    assert client.post("/setup", json={}, auth=("ann", "s3cret")).status_code == 200
    task = world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    assert client.post("/predict", json=body(world, task), auth=("ann", "s3cret")).status_code == 200


def test_media_from_allowed_hosts_only_and_no_redirects_elsewhere(world):
    with serving(media_app(world.root)) as base:
        host = base.split("//")[1]
        port = host.split(":")[1]
        client = with_settings(world, allowed_hosts=(host,))
        task = world.task(pose=world.start_pose.to_dict(), reference=f"{base}/reference.png")
        task["data"]["image"] = f"{base}/photo.png"
        assert client.post("/predict", json=body(world, task)).status_code == 200
        task["data"]["reference"] = f"{base}/here"  # a redirect within the allowed host is followed
        assert client.post("/predict", json=body(world, task)).status_code == 200

        outside = Flask("outside")
        outside.add_url_rule("/away", "away", lambda: redirect(f"http://localhost:{port}/reference.png"))  # another host name
        with serving(outside) as other:
            client = with_settings(world, allowed_hosts=(host, other.split("//")[1]))
            task["data"]["reference"] = f"{other}/away"
            response = client.post("/predict", json=body(world, task))
            assert response.status_code == 422 and "refused redirect" in response.get_json()["error"]

        client = with_settings(world)  # the media host is not allowed at all
        task["data"]["reference"] = f"{base}/reference.png"
        response = client.post("/predict", json=body(world, task))
        assert response.status_code == 422 and "FINEPOSE_ALLOWED_HOSTS" in response.get_json()["error"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "ftp://x/y.png", "/data/local-files/?d=%2E%2E/secret.png",
                                 "/data/upload/../../secret.png", "gopher://127.0.0.1/"])
def test_refused_urls(world, url):
    client = with_settings(world, label_studio_url="http://127.0.0.1:9")
    task = world.task(pose=world.start_pose.to_dict(), reference=url)
    response = client.post("/predict", json=body(world, task))
    assert response.status_code == 422 and "refused" in response.get_json()["error"]


def test_oversized_images_and_meshes_are_refused(world):
    task = world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    small_files = with_settings(world, max_image_bytes=1000)
    response = small_files.post("/predict", json=body(world, task))
    assert response.status_code == 422 and "FINEPOSE_MAX_IMAGE_BYTES" in response.get_json()["error"]
    few_pixels = with_settings(world, max_image_pixels=10_000)
    response = few_pixels.post("/predict", json=body(world, task))
    assert response.status_code == 422 and "FINEPOSE_MAX_IMAGE_PIXELS" in response.get_json()["error"]
    small_meshes = with_settings(world, max_mesh_bytes=1000)
    response = small_meshes.post("/predict", json=body(world, task))
    assert response.status_code == 422 and "over the limit" in response.get_json()["error"]


def test_twenty_concurrent_predictions_equal_serial_ones(world):
    tasks = [
        world.task(task_id=i, pose=replace(world.start_pose, azimuth=world.start_pose.azimuth + (i % 5) - 2).to_dict(),
                   reference=world.url("reference.png"))
        for i in range(20)
    ]
    with serving(create_app(world.resources)) as base:
        def post(task):
            response = requests.post(f"{base}/predict", json=body(world, task), timeout=300)
            assert response.status_code == 200, response.text
            return response.json()["results"][0]

        serial = [post(task) for task in tasks]
    with serving(create_app(Resources(world.settings))) as base:  # a fresh process state: nothing kept
        with ThreadPoolExecutor(max_workers=20) as pool:
            concurrent = list(pool.map(post, tasks))
    assert concurrent == serial
    assert len({round(r["score"], 9) for r in serial}) > 1  # the tasks really differ


def test_unreachable_label_studio_is_a_clear_error(world):
    client = with_settings(world, label_studio_url="http://127.0.0.1:9", api_key="x")  # nothing listens there
    task = world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    task["data"]["image"] = "/data/upload/1/photo.png"
    response = client.post("/predict", json=body(world, task))
    error = response.get_json()["error"]
    assert response.status_code == 422, error
    assert all(words in error for words in ("data.image", "/data/upload/1/photo.png", "127.0.0.1:9", "unreachable")), error
    assert client.get("/health").status_code == 200


def test_label_studio_media_without_a_token_is_a_503_naming_it(world):
    """A backend started without LABEL_STUDIO_API_KEY (a container nobody gave one) and a
    photo Label Studio serves: 503 naming the variable, not a 422 'could not fetch'."""
    client = with_settings(world, label_studio_url="http://127.0.0.1:9", api_key=None)
    task = world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"))
    task["data"]["image"] = "/data/upload/1/photo.png"
    response = client.post("/predict", json=body(world, task))
    assert response.status_code == 503 and "LABEL_STUDIO_API_KEY" in response.get_json()["error"], response.get_json()
