"""The satisfaction study against a real Label Studio 1.23.2 with its defaults (Personal Access
Tokens, no local-files serving needed), through the ``finepose study`` command line:

- made from two pose sets, twice: the first study keeps its key, projects and pictures and is
  still reported; its id cannot be reused; wrong ids exit 2 with one line;
- each picture shows what the key says (the candidate pose on the candidate's side);
- made from a team's own project (human annotations vs finepose's predictions);
- the overlays served as Local Files storage where Label Studio serves local files;
- two raters rating every item in real browsers: nothing either can read or fetch names a
  side, the key is not served, neither meets the other's ratings, and the report equals
  the clicks.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geometry.overlay import draw_overlay
from ls_backend.cli.main import main
from ls_backend.datasets.posesets import PoseRecord, write_pose_set
from ls_backend.studio.label_config import parse_label_config
from ls_backend.studio.predictions import number_result, pose_numbers
from ls_backend.tools.study import RATINGS, unblind
from tests.support.browser import browser_available, rate_study
from tests.support.label_studio import template_project
from tests.support.world import make_world

pytestmark = pytest.mark.e2e

SCREENSHOTS = os.environ.get("FINEPOSE_SCREENSHOT_DIR")
UPLOADED = re.compile(r"^/data/upload/\d+/[0-9a-f]{8}-[0-9a-f]{16}\.png$")
ROLE_WORDS = ("human", "refined", "baseline", "candidate", "key.json")


@pytest.fixture
def study_env(label_studio, tmp_path, monkeypatch):
    """The world (a toy car photo), Label Studio's admin token in the environment as a team
    sets it, and a fresh process-wide Resources."""
    ls = label_studio
    (tmp_path / "world").mkdir()
    world = make_world(tmp_path / "world")
    for key, value in {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.api_key,
                       "FINEPOSE_REGISTRY": str(world.root / "registry.json"),
                       "MODEL_DIR": str(tmp_path / "model-dir")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", raising=False)
    from ls_backend import resources as resources_module

    resources_module._shared_resources.forget()
    yield ls, world
    resources_module._shared_resources.forget()


def finepose(capsys, *args) -> tuple[int, dict | None, str]:
    """Run ``finepose ARGS``: (exit status, the JSON it printed, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    start = out.find("{")
    return code, (json.loads(out[start:]) if code == 0 and start >= 0 else None), err


def pose_sets(root: Path, world, count: int) -> tuple[Path, Path, Path, dict]:
    """``count`` photos with a human pose (azimuth off by 4-7 degrees) and the true pose."""
    images = root / "photos"
    images.mkdir()
    human, refined, poses = [], [], {}
    for i in range(count):
        name = f"car{i}.png"
        shutil.copy(world.root / "photo.png", images / name)
        wrong = replace(world.true_pose, azimuth=world.true_pose.azimuth + 4.0 + i)
        human.append(PoseRecord(image=name, model="toy-car", split=None, pose=wrong))
        refined.append(PoseRecord(image=name, model="toy-car", split=None, pose=world.true_pose))
        poses[name] = (wrong, world.true_pose)
    write_pose_set(root / "human.json", human, None)
    write_pose_set(root / "refined.json", refined, None)
    return root / "human.json", root / "refined.json", images, poses


def project_tasks(user, project_id: int) -> list[dict]:
    return sorted((t.model_dump() for t in user.client().tasks.list(project=project_id, fields="all")),
                  key=lambda t: t["data"]["item"])


def picture(user, url: str) -> np.ndarray:
    response = user.api("GET", url)
    response.raise_for_status()
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def halves(user, task: dict, width: int) -> dict[str, np.ndarray]:
    """The task's picture as a rater gets it, cut into its left and right halves."""
    pair = picture(user, task["data"]["pair"])
    assert pair.shape[1] == 2 * width + 16
    return {"left": pair[:, :width], "right": pair[:, width + 16:]}


def other_side(side: str) -> str:
    return "left" if side == "right" else "right"


def rate(user, task: dict, verdict: str, key: dict) -> None:
    """Give ``verdict`` (candidate vs baseline) as ``user`` through the API: the click it takes."""
    shown = unblind(verdict, key["items"][task["data"]["item"]]["candidate_side"])
    user.client().annotations.create(id=task["id"], result=[
        {"from_name": "rating", "to_name": "pair", "type": "choices", "value": {"choices": [shown]}}])


def folder_digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_study_from_pose_sets_is_blind_safe_to_rerun_and_reported(study_env, tmp_path, capsys):
    ls, world = study_env
    human, refined, images, poses = pose_sets(tmp_path, world, 4)
    raters = [ls.create_user(f"pose-rater-{c}@finepose.test") for c in "ab"]
    studies = tmp_path / "studies"
    create = ["study", "create", "--human", human, "--refined", refined, "--images", images, "--sample", 4,
              "--studies", studies, "--rater", raters[0].email, "--rater", raters[1].email]
    code, first, err = finepose(capsys, *create)
    assert code == 0, err
    key = json.loads(Path(first["key"]).read_text())
    assert Path(first["key"]).parent == studies / first["study"] and oct(Path(first["key"]).stat().st_mode)[-3:] == "600"
    assert isinstance(key["seed"], int) and key["seed"] > 2**16  # drawn at random, recorded
    assert [p["rater"] for p in first["projects"]] == [r.email for r in raters]

    # Blind: each rater's tasks hold two random upload names and an opaque item, nothing else.
    orders = []
    for rater, project in zip(raters, key["projects"]):
        tasks = project_tasks(rater, project["project"])
        assert len(tasks) == 4 and all(set(t["data"]) == {"pair", "item"} for t in tasks)
        for task in tasks:
            assert UPLOADED.match(task["data"]["pair"])
            assert not any(word in json.dumps(task["data"]).lower() for word in ROLE_WORDS)
        orders.append(project["order"])
        # each picture is what the key says: the candidate (true) pose on the candidate's side
        for task in tasks:
            item = key["items"][task["data"]["item"]]
            photo = np.asarray(Image.open(images / item["image"]).convert("RGB"))
            wrong, true = poses[item["image"]]
            drawn = halves(rater, task, photo.shape[1])
            np.testing.assert_array_equal(drawn[item["candidate_side"]],
                                          draw_overlay(photo, {"model": world.renderer.render(true)}))
            np.testing.assert_array_equal(drawn[other_side(item["candidate_side"])],
                                          draw_overlay(photo, {"model": world.renderer.render(wrong)}))
    assert sorted(orders[0]) == sorted(orders[1]) == sorted(key["items"])

    # Ratings through the API (the browser test clicks); a stray rating by rater a in rater
    # b's project is left out of the report.
    plan = {raters[0].email: ["Better", "Better", "Equal", "Worse"], raters[1].email: ["Better", "Equal", "Equal", "Worse"]}
    for rater, project in zip(raters, key["projects"]):
        for task, verdict in zip(project_tasks(rater, project["project"]), plan[rater.email]):
            rate(rater, task, verdict, key)
    stray = project_tasks(raters[0], key["projects"][1]["project"])[0]
    rate(raters[0], stray, "Worse", key)
    report = ["study", "report", "--study", first["study"], "--studies", studies, "--out", tmp_path / "report"]
    code, summary, err = finepose(capsys, *report)
    assert code == 0, err
    everything = [v for verdicts in plan.values() for v in verdicts]
    assert summary["overall"] == {r: everything.count(r) / 8 for r in RATINGS}
    for email, verdicts in plan.items():
        assert summary["per_rater"][email]["shares"] == {r: verdicts.count(r) / 4 for r in RATINGS}
    assert [(x["task"], x["by"]) for x in summary["left_out"]] == [(stray["id"], raters[0].email)]
    assert summary["raters_per_item"] == 2 and summary["kappa_items"] == 4
    assert (tmp_path / "report" / "ratings.png").is_file()

    # A second study leaves the first as it was, and the first is still reported the same.
    first_files = folder_digest(studies / first["study"])
    first_tasks = [project_tasks(r, p["project"]) for r, p in zip(raters, key["projects"])]
    code, second, err = finepose(capsys, *create)
    assert code == 0, err
    assert second["study"] != first["study"] and {p["project"] for p in second["projects"]}.isdisjoint(
        {p["project"] for p in first["projects"]})
    assert folder_digest(studies / first["study"]) == first_files
    assert [project_tasks(r, p["project"]) for r, p in zip(raters, key["projects"])] == first_tasks
    code, again, err = finepose(capsys, *report)
    assert code == 0 and again["overall"] == summary["overall"], err

    # Errors: one line each, exit 2, no traceback, no HTTP headers.
    for args, words in [
        ([*create, "--id", first["study"]], "already exists"),
        (["study", "report", "--study", "no-such-study", "--studies", studies, "--out", tmp_path / "x"], "no study"),
        (["study", "create", "--from-project", 999999, "--raters", 2, "--studies", studies], "no project 999999"),
        ([*create[:-4], "--rater", "nobody@finepose.test"], "nobody@finepose.test"),
    ]:
        code, _, err = finepose(capsys, *args)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
        assert "set-cookie" not in err.lower()


def test_a_study_from_a_teams_project(study_env, tmp_path, capsys):
    """Human annotations vs finepose's refined predictions of a pose project: the tasks with
    both become the items, each candidate picture drawn at the prediction's pose."""
    ls, world = study_env
    client = ls.client()
    project, data = template_project(ls, world, "team poses")
    config = parse_label_config(client.projects.get(id=project.id).label_config)
    client.projects.import_tasks(id=project.id, request=[data] * 4)
    tasks = sorted(client.tasks.list(project=project.id), key=lambda t: t.id)
    annotator = ls.create_user("team-annotator@finepose.test")
    human = {}
    for i, task in enumerate(tasks):
        human[task.id] = replace(world.true_pose, azimuth=world.true_pose.azimuth - 5.0 - i)
        if i < 3:  # the last task has a prediction only: not an item
            annotator.client().annotations.create(id=task.id, result=[
                number_result(config, n, v) for n, v in pose_numbers(human[task.id]).items()])
        client.predictions.create(task=task.id, model_version="finepose-test", score=0.9, result=[
            number_result(config, n, v) for n, v in pose_numbers(world.true_pose).items()])
    studies = tmp_path / "studies"
    code, made, err = finepose(capsys, "study", "create", "--from-project", project.id, "--raters", 2, "--sample", 3,
                               "--studies", studies, "--seed", 11)
    assert code == 0, err
    key = json.loads(Path(made["key"]).read_text())
    assert sorted(item["task"] for item in key["items"].values()) == [t.id for t in tasks[:3]]
    assert key["baseline"] == "human (annotation)" and key["candidate"] == "refined (prediction)"
    photo = np.asarray(Image.open(world.root / "photo.png").convert("RGB"))
    raters = [ls.create_user(f"team-rater-{c}@finepose.test") for c in "ab"]
    plan = [["Better", "Better", "Better"], ["Better", "Equal", "Worse"]]
    for rater, project_key, verdicts in zip(raters, key["projects"], plan):
        for task, verdict in zip(project_tasks(rater, project_key["project"]), verdicts):
            item = key["items"][task["data"]["item"]]
            drawn = halves(rater, task, photo.shape[1])
            np.testing.assert_array_equal(drawn[item["candidate_side"]],
                                          draw_overlay(photo, {"model": world.renderer.render(world.true_pose)}))
            np.testing.assert_array_equal(drawn[other_side(item["candidate_side"])],
                                          draw_overlay(photo, {"model": world.renderer.render(human[item["task"]])}))
            rate(rater, task, verdict, key)
    code, summary, err = finepose(capsys, "study", "report", "--study", made["study"], "--studies", studies,
                                  "--out", tmp_path / "report")
    assert code == 0, err
    assert summary["overall"] == {"Worse": 1 / 6, "Equal": 1 / 6, "Better": 4 / 6}
    assert {k: v["shares"]["Better"] for k, v in summary["per_rater"].items()} == {r.email: b for r, b in
                                                                                  zip(raters, (1.0, 1 / 3))}


def test_overlays_as_local_files_and_the_key_kept_out_of_them(study_env, tmp_path, capsys, monkeypatch):
    ls, world = study_env
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(ls.local_files_root))
    from ls_backend import resources as resources_module

    resources_module._shared_resources.forget()
    human, refined, images, _ = pose_sets(tmp_path, world, 2)
    media = ls.local_files_root / "studies-media"
    media.mkdir(exist_ok=True)
    base = ["study", "create", "--human", human, "--refined", refined, "--images", images, "--sample", 2,
            "--raters", 1, "--media-root", media]
    code, _, err = finepose(capsys, *base, "--studies", media / "keys")
    assert code == 2 and "may serve" in err and not (media / "keys").exists()
    code, made, err = finepose(capsys, *base, "--studies", tmp_path / "studies")
    assert code == 0, err
    rater = ls.create_user("local-rater@finepose.test")
    for task in project_tasks(rater, made["projects"][0]["project"]):
        assert re.fullmatch(rf"/data/local-files/\?d=studies-media/{made['study']}/[0-9a-f]{{16}}\.png", task["data"]["pair"])
        assert set(halves(rater, task, world.reference.shape[1])) == {"left", "right"}
    assert not list((media / made["study"]).glob("*.json"))


@pytest.mark.skipif(browser_available() is not None, reason=str(browser_available()))
def test_two_raters_rate_blind_in_the_browser(study_env, tmp_path, capsys):
    ls, world = study_env
    human, refined, images, _ = pose_sets(tmp_path, world, 3)
    raters = [ls.create_user(f"browser-rater-{c}@finepose.test") for c in "ab"]
    studies = tmp_path / "studies"
    code, made, err = finepose(capsys, "study", "create", "--human", human, "--refined", refined, "--images", images,
                               "--sample", 3, "--studies", studies, "--rater", raters[0].email, "--rater", raters[1].email)
    assert code == 0, err
    key = json.loads(Path(made["key"]).read_text())
    admin = ls.admin
    # What each rater wants to say of the candidate; the click that says it depends on the side.
    plan = {raters[0].email: ["Better", "Equal", "Better"], raters[1].email: ["Better", "Worse", "Equal"]}
    items = sorted(key["items"])
    out = Path(SCREENSHOTS or tmp_path) / "study"
    key_probe = "/data/local-files/?d=" + os.path.relpath(made["key"], ls.local_files_root)
    seen = {}
    for rater, project in zip(raters, key["projects"]):
        tasks = project_tasks(admin, project["project"])
        choices = {t["id"]: unblind(plan[rater.email][items.index(t["data"]["item"])],
                                    key["items"][t["data"]["item"]]["candidate_side"]) for t in tasks}
        seen[rater.email] = rate_study(ls, project["project"], out / rater.email.split("@")[0], choices,
                                       email=rater.email, password=rater.password,
                                       probes=[key_probe, "/data/" + os.path.relpath(made["key"], "/"),
                                               f"/data/upload/{project['project']}/key.json"])
        assert sorted(r["task"] for r in seen[rater.email]["rated"]) == sorted(choices)
        assert all(r["annotation"] for r in seen[rater.email]["rated"])

    for rater, other in zip(raters, raters[::-1]):
        looked = seen[rater.email]
        # nothing readable or fetched names a side or the key; every picture has a random name
        readable = json.dumps([looked["texts"], looked["images"], looked["media"],
                               [(r["url"], r["body"]) for r in looked["responses"]]]).lower()
        for word in (*ROLE_WORDS, str(key["seed"]), made["study"] + "/key", str(studies).lower()):
            assert word.lower() not in readable, word
        assert len(looked["images"]) >= 3 and len(set(looked["media"])) == 3, looked["media"]
        assert all(re.search(r"/data/upload/\d+/[0-9a-f]{8}-[0-9a-f]{16}\.png$", url) for url in looked["media"])
        # the key is fetched nowhere (Label Studio 1.23.2 answers a path leaving its document root,
        # and a missing upload, with an error of its own: 500; the media root with 404)
        assert all(p["status"] >= 400 and "candidate_side" not in p["body"] for p in looked["probes"])
        # neither meets the other's ratings on the way: every annotation received is their own
        # (Label Studio Community does send every page the organization's users and projects)
        annotations = [a for r in looked["responses"] for a in _annotations_in(r["body"])]
        assert annotations and all(a["completed_by"] == rater.id for a in annotations)
        assert all(other.id != a["completed_by"] for a in annotations)
    # Label Studio credits each rating to its rater, in their own project only
    for rater, project in zip(raters, key["projects"]):
        done = [a for t in project_tasks(admin, project["project"]) for a in t["annotations"]]
        assert len(done) == 3 and {a["completed_by"] for a in done} == {rater.id}
    code, summary, err = finepose(capsys, "study", "report", "--study", made["study"], "--studies", studies,
                                  "--out", out / "report")
    assert code == 0, err
    for email, verdicts in plan.items():
        assert summary["per_rater"][email]["shares"] == {r: verdicts.count(r) / 3 for r in RATINGS}
    everything = [v for verdicts in plan.values() for v in verdicts]
    assert summary["overall"] == {r: everything.count(r) / 6 for r in RATINGS}


def _annotations_in(body: str) -> list[dict]:
    """Every annotation object (a dict with ``completed_by`` and ``result``) in a JSON body."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    found, stack = [], [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "completed_by" in node and "result" in node:
                by = node["completed_by"]
                found.append({**node, "completed_by": by.get("id") if isinstance(by, dict) else by})
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found
