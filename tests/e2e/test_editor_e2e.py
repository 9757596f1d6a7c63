"""The pose editor against a real Label Studio 1.23 (tests/support/label_studio.py) in headless
Chromium: a project from finepose's template gets editor links; from the labeling screen a
click opens the editor, azimuth is turned, Refine, Save; Label Studio then holds an
annotation with the refined numbers (on the project's steps) and the projection, the
webhook's refined prediction follows, and the next task opens. Forged, expired and
other-task links are refused (403); the browser never receives the API key."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from geometry.iou import iou
from geometry.pose import PARAMETER_NAMES
from ls_backend.server.app import create_app
from ls_backend.studio.label_config import parse_label_config
from ls_backend.studio.predictions import filled
from ls_backend.resources import Resources
from ls_backend.studio.tasks import brush_mask
from ls_backend.editor import links
from tests.support.world import make_world
from tests.support.browser import browser_available
from tests.support.editor_browser import run_page
from tests.support.backend_client import serving
from tests.support.label_studio import numbers, template_project, wait_until

pytestmark = pytest.mark.e2e
SCREENSHOT_DIR = os.environ.get("FINEPOSE_SCREENSHOT_DIR")
EDITOR = "window.fineposeEditor"


@pytest.fixture(scope="module")
def editor_project(label_studio, tmp_path_factory):
    ls = label_studio
    world = make_world(tmp_path_factory.mktemp("editor-e2e"))
    client = ls.client()
    project, data = template_project(ls, world, "editor e2e")
    assert data["editor"] == ""  # Label Studio requires the key at import
    client.projects.import_tasks(id=project.id, request=[{**data, "pose": world.start_pose.to_dict()} for _ in range(2)])
    task_ids = sorted(t.id for t in client.tasks.list(project=project.id))
    settings = replace(world.settings, label_studio_url=ls.url, api_key=ls.api_key, local_files_roots=())
    resources = Resources(settings)
    with serving(create_app(resources)) as backend_url:
        response = ls.api("POST", "/api/ml", json={"url": backend_url, "project": project.id, "title": "finepose"})
        assert response.status_code == 201, response.text
        filled = links.fill_project_links(client, project.id, settings, backend_url)
        yield {"ls": ls, "client": client, "project": project, "tasks": task_ids, "world": world, "settings": settings,
               "resources": resources, "url": backend_url, "filled": filled}


def task_link(editor_project, task_id) -> str:
    return links.link_in(editor_project["client"].tasks.get(id=task_id).data["editor"])


def test_links_are_filled_in(editor_project):
    filled = editor_project["filled"]
    assert filled["tasks"] == 2 and filled["links_written"] == 2
    for task_id in editor_project["tasks"]:
        assert task_link(editor_project, task_id).startswith(f"{editor_project['url']}/editor/{task_id}?t=")
    project = editor_project["client"].projects.get(id=editor_project["project"].id)
    assert filled["project_link"] in project.expert_instruction.replace("&amp;", "&")
    # filling again writes nothing: every link is fresh
    again = links.fill_project_links(editor_project["client"], editor_project["project"].id, editor_project["settings"],
                                     editor_project["url"])  # fmt: skip
    assert again["links_written"] == 0


def test_round_trip_from_the_labeling_screen(editor_project, tmp_path):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    ls, client, world = editor_project["ls"], editor_project["client"], editor_project["world"]
    first, second = editor_project["tasks"]
    shots = Path(SCREENSHOT_DIR or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    steps = [
        {"op": "eval", "js": f"() => {EDITOR}.getPose()"},
        {"op": "key", "key": "d"}, {"op": "key", "key": "d"}, {"op": "key", "key": "d"},
        {"op": "eval", "js": f"() => {EDITOR}.getPose()"},
        {"op": "key", "key": "r"},
        {"op": "wait_for", "js": f"() => {EDITOR}.editor.lastRefine"},
        {"op": "eval", "js": f"() => {EDITOR}.getPose()"},
        {"op": "screenshot", "path": str(shots / "editor_refined.png")},
        {"op": "key", "key": "Control+s"},  # not signed in yet: the page asks for the person's own token
        {"op": "wait_text", "selector": "#status", "text": "sign in first"},
        {"op": "fill", "selector": "#signin-token", "text": ls.api_key},
        {"op": "click", "selector": "#signin-button"},  # checked, then the save goes on
        {"op": "wait_url", "contains": f"/editor/{second}?t="},
        {"op": "eval", "js": f"() => {EDITOR}.state.task"},
    ]  # fmt: skip
    login = {"base_url": ls.url, "email": ls.username, "password": ls.password,
             "screenshot": str(shots / "labeling_screen_editor_link.png")}
    answers = run_page(f"{ls.url}/projects/{editor_project['project'].id}/data?task={first}", steps,
                       via_label_studio=login)  # fmt: skip
    opened, start, turned, refine, refined, next_task = (answers[0], answers[1], answers[5], answers[7], answers[8],
                                                         answers[15])  # fmt: skip
    assert f"/editor/{first}?t=" in opened["href"]
    assert turned["azimuth"] == pytest.approx(start["azimuth"] + 3 * 1.8)
    assert refine["iou_after"] > 0.97 and refine["iou_before"] < refine["iou_after"]
    assert refined == pytest.approx(refine["pose"])
    assert next_task == second

    # Label Studio holds the annotation: the refined numbers on the project's steps, the projection
    [annotation] = client.annotations.list(id=first)
    assert annotation.completed_by == ls.client().users.whoami().id  # the person signed in (here the admin)
    saved = numbers(annotation.result)
    config = parse_label_config(editor_project["project"].label_config)
    for name in PARAMETER_NAMES:
        value = refined[name] % 360 if name == "azimuth" else refined[name]
        assert saved[name] == config.fit(name, value), name  # on the template's Number grid
        assert abs(saved[name] - value) <= config.specs[name].step / 2 + 1e-9, name
    projection = next(r for r in annotation.result if r["type"] == "brushlabels")
    assert projection["value"]["brushlabels"] == ["Projection"]
    assert iou(filled(brush_mask(projection)), world.reference) > 0.97  # drawn as an outline
    # ... and the webhook's refined prediction of that annotation follows
    prediction = wait_until(lambda: next((p for p in client.predictions.list(task=first)
                                          if numbers(p.result).get("iou_before", 0) > 0.95), None),
                            what="the webhook's prediction")  # fmt: skip
    assert prediction.score >= numbers(prediction.result)["iou_before"] - 1e-9


def test_forged_expired_and_other_task_links_get_403(editor_project):
    base, settings = editor_project["url"], editor_project["settings"]
    first, second = editor_project["tasks"]
    signer = links.LinkSigner(settings)
    good = signer.token(editor_project["project"].id, first)
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    other_key = links.LinkSigner(replace(settings, editor_secret="someone else's key")).token(editor_project["project"].id, first)
    expired = signer.token(editor_project["project"].id, first, lifetime=-5)
    assert requests.get(f"{base}/editor/{first}?t={good}", timeout=30).status_code == 200
    for token in (forged, other_key, expired, ""):
        for path in ("", "/state", "/photo", "/mesh.bin"):
            assert requests.get(f"{base}/editor/{first}{path}?t={token}", timeout=30).status_code == 403, (token, path)
    # a link for one task cannot read or write another
    assert requests.get(f"{base}/editor/{second}/state?t={good}", timeout=30).status_code == 403
    before = len(editor_project["client"].annotations.list(id=second))
    r = requests.post(f"{base}/editor/{second}/save?t={good}", json={"pose": {k: 1.0 for k in PARAMETER_NAMES}}, timeout=30)
    assert r.status_code == 403 and len(editor_project["client"].annotations.list(id=second)) == before
    # the page's strict policy: scripts from the backend only
    page = requests.get(f"{base}/editor/{first}?t={good}", timeout=30)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_browser_never_receives_the_api_key(editor_project):
    base, first = editor_project["url"], editor_project["tasks"][0]
    token = links.LinkSigner(editor_project["settings"]).token(editor_project["project"].id, first)
    key = editor_project["ls"].api_key
    for path in ("", "/state", "/photo", "/reference.png", "/mesh.bin"):
        body = requests.get(f"{base}/editor/{first}{path}?t={token}", timeout=60).content
        assert key.encode() not in body, path
    for name in ("editor.js", "camera.js", "editor.html"):
        assert key.encode() not in requests.get(f"{base}/editor/static/{name}", timeout=30).content


def test_project_link_opens_the_next_task_without_annotation(editor_project):
    project_id, (first, second) = editor_project["project"].id, editor_project["tasks"]
    link = editor_project["filled"]["project_link"]
    response = requests.get(link, allow_redirects=False, timeout=60)
    assert response.status_code == 302
    annotated = {t for t in (first, second) if editor_project["client"].annotations.list(id=t)}
    expected = next(t for t in (first, second) if t not in annotated) if len(annotated) < 2 else None
    assert f"/editor/{expected}?t=" in response.headers["Location"]
    # a project link is not a task link, and a task link is not a project link
    task_token = links.LinkSigner(editor_project["settings"]).token(project_id, first)
    assert requests.get(link.split("?")[0] + f"?t={task_token}", timeout=30).status_code == 403
    assert requests.get(f"{editor_project['url']}/editor/{first}?t={link.split('?t=')[1]}", timeout=30).status_code == 403


@pytest.fixture(scope="module")
def people(editor_project):
    """A second project of three tasks on the same backend; two annotators with their own
    accounts and Personal Access Tokens, and a third person removed from the organization."""
    ls, client, world = editor_project["ls"], editor_project["client"], editor_project["world"]
    project, data = template_project(ls, world, "editor people")
    client.projects.import_tasks(id=project.id, request=[{**data, "pose": world.start_pose.to_dict()} for _ in range(3)])
    tasks = sorted(t.id for t in client.tasks.list(project=project.id))
    links.fill_project_links(client, project.id, editor_project["settings"], editor_project["url"])
    annotators = [ls.create_user(f"annotator{k}@finepose.test") for k in (1, 2)]
    outsider = ls.create_user("outsider@finepose.test")
    organization = ls.api("GET", "/api/organizations").json()[0]["id"]
    removed = ls.api("DELETE", f"/api/organizations/{organization}/memberships/{outsider.id}/")
    assert removed.status_code == 204, removed.text
    return {"project": project, "tasks": tasks, "annotators": annotators, "outsider": outsider}


def test_each_save_is_credited_to_the_person_signed_in(editor_project, people, tmp_path):
    """Two annotators, each with their own token, save from the editor: Label Studio credits
    each annotation to its person (completed_by), not to the backend's token; the session
    carries to the next task. A person removed from the organization is refused and cannot
    save."""
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    client, tasks = editor_project["client"], people["tasks"]
    shots = Path(SCREENSHOT_DIR or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    backend_user = editor_project["ls"].client().users.whoami().id
    for k, (person, task, following) in enumerate(zip(people["annotators"], tasks, tasks[1:])):
        steps = [
            {"op": "eval", "js": f"() => {EDITOR}.editor.annotator"},
            {"op": "key", "key": "Control+s"},
            {"op": "wait_text", "selector": "#status", "text": "sign in first"},
            {"op": "screenshot", "path": str(shots / "editor_sign_in.png")},
            {"op": "fill", "selector": "#signin-token", "text": person.api_key},
            {"op": "click", "selector": "#signin-button"},
            {"op": "wait_url", "contains": f"/editor/{following}?t="},
            {"op": "eval", "js": f"() => {EDITOR}.editor.annotator"},  # the cookie goes on to the next task
            {"op": "eval", "js": "() => document.querySelector('#who-name').textContent"},
        ]  # fmt: skip
        answers = run_page(task_link(editor_project, task), steps)
        assert answers[1] is None and answers[8]["email"] == person.email, answers
        assert person.email in answers[9]
        [annotation] = client.annotations.list(id=task)
        assert annotation.completed_by == person.id != backend_user, (k, annotation.completed_by)

    # Removed from the organization: Label Studio refuses the token; nothing can be saved.
    outsider, last = people["outsider"], tasks[2]
    steps = [
        {"op": "fill", "selector": "#signin-token", "text": outsider.api_key},
        {"op": "click", "selector": "#signin-button"},
        {"op": "wait_text", "selector": "#status", "text": "sign in:"},
        {"op": "eval", "js": f"() => {EDITOR}.editor.annotator"},
        {"op": "screenshot", "path": str(shots / "editor_sign_in_refused.png")},
        {"op": "key", "key": "Control+s"},
        {"op": "wait_text", "selector": "#status", "text": "sign in first"},
    ]  # fmt: skip
    answers = run_page(task_link(editor_project, last), steps)
    refusal = answers[3]
    assert "did not confirm" in refusal and "removed from the organization" in refusal, refusal
    assert answers[4] is None
    # The backend refuses a save without a session (the page does not even send it).
    link = task_link(editor_project, last)
    save = requests.post(link.replace("?t=", "/save?t="), json={"pose": {k: 1.0 for k in PARAMETER_NAMES}}, timeout=30)
    assert save.status_code == 401 and "Personal Access Token" in save.json()["error"]
    assert client.annotations.list(id=last) == []
