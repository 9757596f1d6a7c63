"""Point 4 of issue 10: a likely front/back confusion is shown to the annotator as a second
prediction of the task (Label Studio lists both above the photo; one click switches)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from geometry.ambiguity import FOCAL_RATIO, MARGIN, far_apart_rival, flip_starts
from geometry.iou import iou
from geometry.masks import resize_mask, write_mask
from geometry.pose import wrap_degrees
from geometry.refine import refine
from ls_backend.server.app import create_app
from tests.support.world import make_world
from tests.support.backend_client import brushes, numbers, predict

FRONT = dict(azimuth=0.0, elevation=10.0, theta=0.0)  # the toy car from the front: the back looks alike


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("ambiguity"))
    write_mask(world.root / "front.png", world.renderer.render(replace(world.true_pose, **FRONT)))
    return world


@pytest.fixture(scope="module")
def client(world):
    return create_app(world.resources).test_client()


def messages(prediction) -> list[str]:
    return [r["value"]["text"][0] for r in prediction["result"] if r["type"] == "textarea"]


def test_flip_starts_turn_and_mirror_the_azimuth(world):
    starts = flip_starts(replace(world.true_pose, azimuth=35.0))
    assert [round(s.azimuth % 360, 6) for s in starts] == [215.0, 145.0]
    assert len(flip_starts(replace(world.true_pose, azimuth=95.0))) == 1  # 180 - 95 is next to 95


def test_a_front_view_has_a_back_view_rival_and_an_oblique_view_has_none(world):
    for view, expect_rival in ((FRONT, True), (dict(azimuth=35.0), False)):
        pose = replace(world.true_pose, **view)
        mask = resize_mask(world.renderer.render(pose), 300, 200)
        refined = refine(world.renderer, mask, pose)
        rival = far_apart_rival(world.renderer, mask, refined.refined, refined.iou_refined)
        if not expect_rival:
            assert rival is None
            continue
        assert rival is not None and rival.iou >= refined.iou_refined - MARGIN
        assert abs(wrap_degrees(rival.pose.azimuth - pose.azimuth)) > 150  # the back view
        assert 1 / FOCAL_RATIO <= rival.pose.focal / refined.refined.focal <= FOCAL_RATIO  # the same camera


def test_retrieve_answers_both_hypotheses_for_a_front_view(client, world):
    task = world.task(task_id=5, reference=world.url("front.png"))
    [answer] = predict(client, world, [task]).get_json()["results"]
    assert isinstance(answer, list) and len(answer) == 2, answer
    second, first = answer  # the best last: Label Studio's editor opens the newest stored prediction
    reference = world.renderer.render(replace(world.true_pose, **FRONT))
    assert first["score"] >= second["score"] >= first["score"] - MARGIN
    assert abs(wrap_degrees(numbers(first)["azimuth"] - numbers(second)["azimuth"])) > 150
    assert first["model_version"] == second["model_version"]  # Label Studio shows predictions of its version only
    for prediction in answer:
        assert iou(brushes(prediction)["Projection"], reference) > 0.9
    [told] = messages(first)
    assert "second finepose prediction" in told and f"{numbers(second)['azimuth']:g}" in told
    [said] = messages(second)
    assert said.startswith("Second hypothesis") and f"{numbers(first)['azimuth']:g}" in said


def test_no_second_prediction_without_a_rival_nor_for_a_persons_pose(client, world):
    oblique = world.task(task_id=6, reference=world.url("reference.png"), pose=world.start_pose.to_dict())
    [answer] = predict(client, world, [oblique]).get_json()["results"]
    assert isinstance(answer, dict) and not messages(answer)
    front = world.task(task_id=7, reference=world.url("front.png"))
    front["annotations"] = [world.human_annotation(replace(world.true_pose, **FRONT))]
    [answer] = predict(client, world, [front]).get_json()["results"]
    assert isinstance(answer, dict)  # the annotator's own pose is refined, not second-guessed


def test_retrieve_checks_an_imported_data_pose_too(client, world):
    """A task imported with ``data.pose`` (a release import, the common case) gets the
    front/back check on Retrieve Predictions: its front view has the back-view rival."""
    start = replace(world.true_pose, **FRONT, distance=world.true_pose.distance * 1.05)
    task = world.task(task_id=8, reference=world.url("front.png"), pose=start.to_dict())
    [answer] = predict(client, world, [task]).get_json()["results"]
    assert isinstance(answer, list) and len(answer) == 2, answer
    second, first = answer
    assert abs(wrap_degrees(numbers(first)["azimuth"] - numbers(second)["azimuth"])) > 150
    assert "second finepose prediction" in messages(first)[0]


def test_interactive_calls_run_no_front_back_check(client, world):
    """A person working on the task (a smart region in the context) gets one prediction: no
    rival is looked for, so none is computed and thrown away."""
    import ls_backend.pipeline.predict as pipeline

    seen = []
    real = pipeline.far_apart_rival
    pipeline.far_apart_rival = lambda *a, **k: seen.append(1) or real(*a, **k)
    try:
        from geometry.camera import project
        from geometry.procedural_keypoints import car_keypoints

        keypoints = car_keypoints()
        front = replace(world.true_pose, **FRONT)
        names = [n for n in sorted(keypoints) if "front" in n][:4] or sorted(keypoints)[:4]
        pixels = project(front, np.array([keypoints[n] for n in names]))
        w, h = front.width, front.height
        regions = [{"from_name": "keypoints", "to_name": "image", "type": "keypointlabels",
                    "value": {"x": (x + 0.5) / w * 100, "y": (y + 0.5) / h * 100, "keypointlabels": [name]}}
                   for name, (x, y) in zip(names, pixels)]
        task = world.task(task_id=9, reference=world.url("front.png"))
        [answer] = predict(client, world, [task], {"result": regions}).get_json()["results"]
    finally:
        pipeline.far_apart_rival = real
    assert isinstance(answer, dict) and answer["score"] > 0.9
    assert seen == []
