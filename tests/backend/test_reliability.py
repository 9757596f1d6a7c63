"""The backend under slow, broken and hostile input: a loopback media server that stalls,
trickles, drops mid-body, lies about Content-Length, redirects and serves bombs
(:mod:`tests.support.hostile_media`), malformed and fuzzed requests (:mod:`tests.support.malformed`), a media
cache that never serves a partial file, bounded memory, and answers that never carry the
server's paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from ls_backend.server.app import create_app
from ls_backend.resources import Resources
from ls_backend.errors import ConfigError
from ls_backend.settings import Settings
from tests.support.world import make_world
from tests.support.hostile_media import HostileMediaServer, StubLabelStudio, rle_claiming
from tests.support.malformed import ClientTarget, fuzzed_requests, malformed_cases, plant_files, predict_body, send, valid_task
from tests.support.backend_client import first_health, serving

#: Every answer finepose's app gave during this module's tests: (path, status, body).
ANSWERS: list[tuple[str, int, str]] = []


@pytest.fixture(scope="module", autouse=True)
def record_answers():
    """Record each answer of finepose's app (Flask's ``request_finished`` signal), for the
    server-path scan at the end of the module."""
    from flask import request, request_finished

    def record(sender, response, **extra):
        if sender.name == "finepose" and not response.direct_passthrough:
            ANSWERS.append((request.path, response.status_code, response.get_data(as_text=True)))

    request_finished.connect(record)
    yield
    request_finished.disconnect(record)

FAST = dict(fetch_connect_s=1.0, fetch_read_s=1.0, fetch_total_s=2.0)  # seconds: hostile servers end quickly


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("reliability"))
    plant_files(world.root)
    return world


@pytest.fixture
def media(world):
    """The hostile server with the world's photo and reference."""
    files = {"photo.png": (world.root / "photo.png").read_bytes(), "reference.png": (world.root / "reference.png").read_bytes()}
    with HostileMediaServer(files) as server:
        yield server


def app_for(world, server=None, tmp_path=None, **changes):
    """A test client of a backend allowed to fetch from ``server``, with its own MODEL_DIR."""
    settings = replace(world.settings, **{**FAST, **changes})
    if server is not None:
        settings = replace(settings, allowed_hosts=(server.host,))
    if tmp_path is not None:
        settings = replace(settings, model_dir=tmp_path / "model-dir")
    resources = Resources(settings)
    return create_app(resources).test_client(), resources


def media_task(world, server, image="ok/photo.png", reference="ok/reference.png", task_id=1) -> dict:
    task = valid_task(world)
    task["id"] = task_id
    task["data"]["image"] = server.url(image)
    task["data"]["reference"] = server.url(reference)
    return task


def post(client, world, task):
    response = client.post("/predict", json=predict_body(world, task))
    return response.status_code, (response.get_json() or {}).get("error", "")


def cache_files(resources) -> list[Path]:
    folder = resources.work_dir / "media-cache"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- timeouts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("behaviour", ["stall/photo.png?after=100", "late/photo.png?seconds=30", "trickle/photo.png?interval=0.3"])
def test_a_slow_media_server_ends_in_a_504_naming_its_host_within_the_total_timeout(world, media, tmp_path, behaviour):
    client, resources = app_for(world, media, tmp_path)
    start = time.monotonic()
    status, error = post(client, world, media_task(world, media, image=behaviour))
    seconds = time.monotonic() - start
    assert status == 504, error
    assert media.host in error and "data.image" in error and "FINEPOSE_FETCH" in error, error
    assert seconds < FAST["fetch_total_s"] + 1.5, seconds
    assert cache_files(resources) == []  # nothing half-written stays


def test_the_total_timeout_covers_all_media_of_a_task(world, media, tmp_path):
    """Photo and reference both slow: the task still ends within one total timeout."""
    client, _ = app_for(world, media, tmp_path, fetch_read_s=1.5, fetch_total_s=2.5)
    task = media_task(world, media, image="trickle/photo.png?interval=0.05", reference="stall/reference.png")
    start = time.monotonic()
    status, error = post(client, world, task)
    assert status == 504 and time.monotonic() - start < 4.0, error


def test_an_unreachable_host_is_a_clear_422(world, tmp_path):
    client, _ = app_for(world, tmp_path=tmp_path, allowed_hosts=("127.0.0.1:9",))
    task = valid_task(world)
    task["data"]["image"] = "http://127.0.0.1:9/photo.png"
    status, error = post(client, world, task)
    assert status == 422 and "127.0.0.1:9 is unreachable" in error and "data.image" in error, error


def test_health_answers_at_once_while_every_refinement_slot_is_stalled(world, media, tmp_path):
    """Four requests stall on the media server in a backend with two refinement slots: /health
    answers within a second meanwhile, and every stalled request ends within one total timeout
    (media are fetched outside the slots: a stalled server holds no slot)."""
    settings = replace(world.settings, model_dir=tmp_path / "model-dir", allowed_hosts=(media.host,), threads=2,
                       fetch_connect_s=1.0, fetch_read_s=3.0, fetch_total_s=3.0)
    with serving(create_app(Resources(settings))) as base:
        def stalled(i):
            start = time.monotonic()
            body = predict_body(world, media_task(world, media, image=f"stall/photo.png?after={10 + i}", task_id=i))
            response = requests.post(f"{base}/predict", json=body, timeout=60)
            return response.status_code, time.monotonic() - start

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(stalled, i) for i in range(4)]
            time.sleep(0.5)
            health = []
            for _ in range(5):
                start = time.monotonic()
                assert requests.get(f"{base}/health", timeout=5).status_code == 200
                health.append(time.monotonic() - start)
                time.sleep(0.2)
            answers = [f.result() for f in futures]
    assert max(health) < 1.0, health
    assert all(status == 504 for status, _ in answers), answers
    assert max(seconds for _, seconds in answers) < 3.0 + 2.0, answers


# -- the media cache -----------------------------------------------------------------------------
def test_a_dropped_download_leaves_nothing_and_the_next_request_recovers(world, media, tmp_path):
    client, resources = app_for(world, media, tmp_path)
    task = media_task(world, media, image="flaky/photo.png?fails=2")
    for _ in range(2):
        status, error = post(client, world, task)
        assert status == 422 and "broke the connection" in error and media.host in error, error
        assert cache_files(resources) == []
    status, error = post(client, world, task)  # the server is healthy again
    assert status == 200, error
    assert len([p for p in cache_files(resources) if p.suffix == ".media"]) == 2  # photo and reference
    assert media.hits["/flaky/photo.png"] == 3
    resources.shared_predictions.clear()  # refined again, not answered from the kept prediction
    status, _ = post(client, world, task)  # served from the cache
    assert status == 200 and media.hits["/flaky/photo.png"] == 3


@pytest.mark.parametrize("behaviour, words", [
    ("drop/photo.png?after=300", "broke the connection after"),
    ("long-length/photo.png", "closed before the announced length"),
    ("huge-length/photo.png", "announces 10737418240 bytes"),
    ("chunked?size=31457280", "sent over"),
    ("gzip-bomb?size=268435456", "sent over"),
    ("status/404", "answered HTTP 404"),
    ("status/503", "answered HTTP 503"),
    ("redirect-loop", "more than 5 redirects"),
])
def test_broken_and_lying_servers_are_422s_that_leave_no_file(world, media, tmp_path, behaviour, words):
    client, resources = app_for(world, media, tmp_path, max_image_bytes=2 << 20)
    if behaviour.startswith("gzip-bomb"):
        media.gzip_of_zeros(268435456)  # compressed before the clock starts: 256 MB of zeros, 256 kB on the wire
    start = time.monotonic()
    status, error = post(client, world, media_task(world, media, image=behaviour))
    assert status == 422 and words in error and media.host in error, error
    assert time.monotonic() - start < 5.0  # no timeout was waited for
    assert cache_files(resources) == []


def test_a_body_shorter_than_announced_is_unreadable_and_not_kept(world, media, tmp_path):
    """Content-Length claims half the file: what arrives is a truncated image, refused, and the
    cached copy is dropped so a later request downloads it again."""
    client, resources = app_for(world, media, tmp_path)
    status, error = post(client, world, media_task(world, media, image="short-length/photo.png"))
    assert status == 422 and "not a readable image" in error, error
    assert [p for p in cache_files(resources) if p.suffix == ".media"] == []


def test_redirects_within_allowed_hosts_only(world, media, tmp_path):
    client, _ = app_for(world, media, tmp_path)
    status, error = post(client, world, media_task(world, media, image="redirect?to=/ok/photo.png"))
    assert status == 200, error
    outside = "http://localhost:9/photo.png"  # another host name
    status, error = post(client, world, media_task(world, media, image=f"redirect?to={outside}"))
    assert status == 422 and "refused redirect" in error and "localhost:9" in error, error


def test_concurrent_first_fetches_of_one_url_share_one_download(world, media, tmp_path):
    client_settings = replace(world.settings, **FAST, model_dir=tmp_path / "model-dir", allowed_hosts=(media.host,))
    tasks = [media_task(world, media, image="late/photo.png?seconds=0.5", task_id=i) for i in range(20)]
    with serving(create_app(Resources(client_settings))) as base:
        def one(task):
            response = requests.post(f"{base}/predict", json=predict_body(world, task), timeout=120)
            return response.status_code, response.text[:200]

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(one, tasks))
    assert [status for status, _ in answers] == [200] * 20, answers
    assert media.hits["/late/photo.png"] == 1
    assert media.hits["/ok/reference.png"] == 1


def test_the_cache_stays_within_its_bound(world, media, tmp_path):
    photo = (world.root / "photo.png").read_bytes()
    for i in range(4):
        media.files[f"photo{i}.png"] = photo + bytes(i)  # four different files
    client, resources = app_for(world, media, tmp_path, media_cache_bytes=int(2.5 * len(photo)))
    for i in range(4):
        status, error = post(client, world, media_task(world, media, image=f"ok/photo{i}.png", reference="ok/photo.png"))
        assert status == 200, error
    cached = [p for p in cache_files(resources) if p.suffix == ".media"]
    assert resources.media_cache.size() <= 2.5 * len(photo) and len(cached) == 2
    newest = resources.media_cache.path(resources.media_cache.key("", media.url("ok/photo3.png")))
    assert newest in cached


def test_an_unwritable_model_dir_degrades_to_a_temporary_cache_and_says_so(world, media, tmp_path, caplog):
    (tmp_path / "a-file").write_text("not a folder")
    client, resources = app_for(world, media, model_dir=tmp_path / "a-file" / "model-dir")
    status, error = post(client, world, media_task(world, media))
    assert status == 200, error
    assert client.get("/health").get_json()["media_cache"] == "temporary"
    assert "is not writable" in caplog.text and "temporary folder" in caplog.text
    assert not resources.work_dir.is_relative_to(tmp_path)


# -- credentials ---------------------------------------------------------------------------------
def test_the_api_key_goes_to_label_studio_only(world, tmp_path):
    photo = (world.root / "photo.png").read_bytes()
    with HostileMediaServer({"photo.png": photo}) as ls, HostileMediaServer({"photo.png": photo}) as other:
        client, _ = app_for(world, tmp_path=tmp_path, label_studio_url=ls.base, api_key="secret-token",
                            allowed_hosts=(other.host,))
        task = valid_task(world)
        task["data"]["image"] = ls.url("ok/photo.png")
        assert post(client, world, task)[0] == 200
        task["data"]["image"] = ls.url(f"redirect?to={other.url('ok/photo.png')}")  # Label Studio redirects elsewhere
        assert post(client, world, task)[0] == 200
        task["data"]["image"] = other.url("ok/photo.png?fresh=1")
        assert post(client, world, task)[0] == 200
    assert {h.get("Authorization") for _, h in ls.headers} == {"Token secret-token"}
    assert [h.get("Authorization") for _, h in other.headers] == [None, None]


# -- memory --------------------------------------------------------------------------------------
def test_an_rle_claiming_four_billion_values_allocates_nothing(world):
    client = create_app(world.resources).test_client()
    task = valid_task(world)
    brush = {"from_name": "masks", "to_name": "image", "type": "brushlabels", "original_width": 480, "original_height": 320,
             "value": {"format": "rle", "rle": rle_claiming(0xFFFFFFFF, body_bytes=200_000), "brushlabels": ["Reference"]}}
    task["annotations"] = [{"id": 1, "result": [brush]}]
    tracemalloc.start()
    try:
        response = client.post("/predict", json=predict_body(world, task))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 422 and "encodes 4294967295 values" in response.get_json()["error"]
    assert peak < 100 << 20, peak  # the SDK's decoder would have allocated 4.3 GB


def test_request_size_limit(world):
    client, _ = app_for(world, max_request_bytes=10_000)
    response = client.post("/predict", json=predict_body(world, valid_task(world)) | {"pad": "x" * 20_000})
    assert response.status_code == 413 and "FINEPOSE_MAX_REQUEST_BYTES" in response.get_json()["error"]


# -- malformed and fuzzed requests ---------------------------------------------------------------
@pytest.fixture(scope="module")
def hook_client(world):
    """A backend whose Label Studio is a loopback stub accepting predictions (webhooks store)."""
    with StubLabelStudio() as stub:
        settings = replace(world.settings, label_studio_url=stub.base, api_key="stub-token")
        yield create_app(Resources(settings)).test_client()


@pytest.fixture(scope="module")
def unreachable_ls_client(world):
    settings = replace(world.settings, label_studio_url="http://127.0.0.1:9", api_key="x")
    return create_app(Resources(settings)).test_client()


def test_every_malformed_request_class_gets_a_clear_4xx(world, unreachable_ls_client):
    """All classes of :func:`tests.support.malformed.malformed_cases`: the status each must get, the
    field its error must name; no answer carries a server path or a traceback."""
    target = ClientTarget(unreachable_ls_client)
    server_paths = [str(world.root), str(world.settings.model_dir), str(Path.home()), str(Path.cwd())]
    wrong = []
    cases = malformed_cases(world)
    for case in cases:
        answer = send(target, case)
        fits = case.status[0] <= answer.status <= case.status[1]
        named = all(word.lower() in answer.text.lower() for word in case.words)
        leaks = [p for p in server_paths if p in answer.text] + (["Traceback"] if "Traceback" in answer.text else [])
        if not fits or not named or leaks:
            wrong.append(f"{case.name}: {answer.status} {answer.error[:160]!r} leaks={leaks}")
    assert not wrong, "\n".join(wrong)
    assert len(cases) >= 136
    status, error = post(unreachable_ls_client, world, valid_task(world))  # still serving
    assert status == 200, error


def test_fuzzed_requests_never_get_a_5xx(world, hook_client):
    target = ClientTarget(hook_client)
    statuses, fives = {}, []
    for fuzzed in fuzzed_requests(world, count=150, seed=11):
        answer = target.send("POST", fuzzed.path, json.dumps(fuzzed.body, allow_nan=True).encode())
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        if answer.status >= 500:
            fives.append(f"{fuzzed.path} {fuzzed.mutations}: {answer.status} {answer.error[:200]}")
    assert not fives, "\n".join(fives)
    assert statuses.get(200, 0) + statuses.get(201, 0) > 10 and sum(v for k, v in statuses.items() if 400 <= k < 500) > 50


# -- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize("env, missing", [({"BASIC_AUTH_USER": "ann"}, "BASIC_AUTH_PASS"),
                                          ({"BASIC_AUTH_PASS": "s3cret"}, "BASIC_AUTH_USER")])
def test_half_configured_basic_auth_refuses_to_start(env, missing, tmp_path):
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(env)
    result = subprocess.run([sys.executable, "-m", "ls_backend.cli", "serve", "--port", "0"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, **env, "MODEL_DIR": str(tmp_path)}, cwd=Path(__file__).parents[2])
    assert result.returncode != 0 and missing in result.stderr + result.stdout


def test_a_registry_missing_at_start_keeps_the_server_up_and_health_says_so_until_it_appears(world, tmp_path):
    """``finepose serve`` with ``FINEPOSE_PRELOAD_MESHES=1`` and a registry not there yet (a
    container whose volume is filled later): the server stays up, ``/health`` answers 503 naming
    FINEPOSE_REGISTRY (Label Studio shows it; a healthcheck fails), then naming the mesh the
    registry lists but the folder lacks, and 200 once both are there, without a restart."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry = tmp_path / "meshes" / "registry.json"
    env = {**os.environ, "MODEL_DIR": str(tmp_path / "model-dir"), "FINEPOSE_REGISTRY": str(registry),
           "FINEPOSE_PRELOAD_MESHES": "1"}
    server = subprocess.Popen([sys.executable, "-m", "ls_backend.cli", "serve", "--host", "127.0.0.1", "--port",
                               str(port), "--workers", "1"], env=env, cwd=Path(__file__).parents[2],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        health = first_health(url, server)
        assert health.status_code == 503, health
        assert "FINEPOSE_REGISTRY" in health.json()["error"] and str(tmp_path) not in health.text, health.text
        registry.parent.mkdir()
        registry.write_text((world.root / "registry.json").read_text())  # its mesh not there yet: still not ready
        health = requests.get(f"{url}/health", timeout=5)
        assert health.status_code == 503 and "toy_car.ply" in health.json()["error"] and server.poll() is None, health.text
        (registry.parent / "toy_car.ply").write_bytes((world.root / "toy_car.ply").read_bytes())
        health = requests.get(f"{url}/health", timeout=5)
        assert health.status_code == 200 and health.json()["models"] == 1 and server.poll() is None
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_a_backend_without_registry_is_not_ready(world):
    client = create_app(Resources(replace(world.resources.settings, registry=None))).test_client()
    health = client.get("/health")
    assert health.status_code == 503 and "FINEPOSE_REGISTRY" in health.get_json()["error"]


def test_health_and_errors_carry_no_paths_or_model_lists(world):
    client = create_app(world.resources).test_client()
    health = client.get("/health")
    assert health.status_code == 200 and "/" not in json.dumps({k: v for k, v in health.get_json().items()
                                                                if k != "model_version"})
    task = valid_task(world)
    task["data"]["model"] = "no-such-car"
    text = client.post("/predict", json=predict_body(world, task)).get_data(as_text=True)
    assert "toy-car" not in text and str(world.root) not in text and "registry.json" not in text


def test_a_degenerate_mesh_is_refused_not_scored(world, tmp_path):
    import numpy as np

    from geometry.mesh import Mesh, MeshError

    with pytest.raises(MeshError, match="degenerate"):
        Mesh(vertices=np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2.0]]), triangles=np.array([[0, 1, 2]], dtype=np.int32))
    (tmp_path / "line.obj").write_text("v 0 0 0\nv 1 1 1\nv 2 2 2\nf 1 2 3\n")
    (tmp_path / "registry.json").write_text(json.dumps({"toy-car": {"mesh": "line.obj", "category": "car"}}))
    client, _ = app_for(world, tmp_path=tmp_path, registry=tmp_path / "registry.json")
    status, error = post(client, world, valid_task(world))
    assert status == 422 and "degenerate" in error and str(tmp_path) not in error, error


def test_no_answer_of_these_tests_names_a_server_path(world):
    """The scan: every answer recorded above (malformed, fuzzed, hostile media, stalled,
    oversized...) names files by their names only, never by the server's folders."""
    import sys
    import tempfile

    folders = {str(world.root.resolve()), str(Path(world.settings.model_dir).resolve()), str(Path.cwd()),
               sys.prefix, tempfile.gettempdir() + "/", str(Path.home()) + "/"}
    assert len(ANSWERS) > 300, len(ANSWERS)
    leaks = [f"{path} {status}: {folder} in {body[:200]!r}" for path, status, body in ANSWERS for folder in folders
             if folder in body]
    assert not leaks, "\n".join(leaks[:10])

