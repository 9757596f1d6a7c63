"""The one rule for a task's start pose and reference (:mod:`ls_backend.studio.resolve`), and
the backend's pipeline and the pose editor reading a task the same way through it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from geometry.pose import PARAMETER_NAMES
from ls_backend.editor.task import load_task
from ls_backend.pipeline.reference import reference_mask
from ls_backend.studio.label_config import parse_label_config
from ls_backend.studio.predictions import brush_result, outline
from ls_backend.studio.resolve import resolve_task
from ls_backend.studio.tasks import read_task
from tests.support.editor_world import LocalSource
from tests.support.world import make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("resolve"))


def resolved(world, task, predictions=False):
    config = parse_label_config(world.label_config)
    inputs = read_task(task, config)
    entry = world.resources.registry.entry(inputs.model_id)
    return resolve_task(task, inputs, config, entry, world.true_pose.width, world.true_pose.height, predictions)


def annotation(pose=None, numbers=None, extra=()):
    numbers = numbers or dict(zip(PARAMETER_NAMES, pose.vector()))
    result = [{"from_name": n, "to_name": "image", "type": "number", "value": {"number": v}} for n, v in numbers.items()]
    return {"id": 3, "result": result + list(extra), "was_cancelled": False}


def test_a_persons_pose_comes_first_then_data_pose(world):
    task = world.task(pose=world.start_pose.to_dict())
    assert resolved(world, task).start.source == "data.pose"
    task["annotations"] = [annotation(world.true_pose)]
    found = resolved(world, task)
    assert found.start.source == "annotation" and found.start.by_a_person and not found.notes
    assert found.start.pose.vector() == pytest.approx(world.true_pose.vector())


def test_an_out_of_range_annotation_is_passed_over_and_said(world):
    """distance = 99999999999 saved through the API: the task is not blocked, the next start
    is used and the note names the number."""
    numbers = {**dict(zip(PARAMETER_NAMES, world.true_pose.vector())), "distance": 99999999999}
    task = {**world.task(pose=world.start_pose.to_dict()), "annotations": [annotation(numbers=numbers)]}
    found = resolved(world, task)
    assert found.start.source == "data.pose"
    assert "the annotation's numbers not used" in found.note() and "distance" in found.note()
    assert found.note().endswith("started from data.pose")
    task = {**world.task(), "annotations": [annotation(numbers={**numbers, "focal": float("nan")})]}
    found = resolved(world, task)
    assert found.start is None and "started from the automatic pose" in found.note()


def test_predictions_count_only_where_asked(world):
    prediction = {"id": 11, "model_version": "v", "result": annotation(replace(world.true_pose, azimuth=50.0))["result"]}
    task = {**world.task(pose=world.start_pose.to_dict()), "predictions": [prediction]}
    assert resolved(world, task).start.source == "data.pose"  # the backend never starts from its own output
    assert resolved(world, task, predictions=True).start.source == "prediction"  # the editor opens on it


def test_the_editor_and_the_pipeline_read_an_outline_reference_brush_identically(world):
    """A Reference brush as predictions draw it (an outline, copied into the annotation), and
    one only in a prediction: both are filled, within FINEPOSE_MAX_IMAGE_PIXELS, by the
    pipeline and by the editor alike."""
    config = parse_label_config(world.label_config)
    drawn = brush_result(config, "Reference", outline(world.reference), readonly=True)
    in_annotation = {**world.task(pose=world.start_pose.to_dict()),
                     "annotations": [annotation(world.start_pose, extra=[drawn])]}
    in_prediction = {**world.task(pose=world.start_pose.to_dict()),
                     "predictions": [{"id": 5, "model_version": "v", "result": [drawn]}]}
    image = np.zeros((world.true_pose.height, world.true_pose.width, 3), np.uint8)
    for task, source in ((in_annotation, "annotation"), (in_prediction, "prediction")):
        choice = resolved(world, task, predictions=True).reference
        assert choice.source == source
        by_pipeline = reference_mask(choice, read_task(task, config), world.resources, image, "car").mask
        editor_source = LocalSource({task["id"]: {k: v for k, v in task.items() if k != "id"}}, world.label_config)
        by_editor = load_task(world.resources, editor_source, task["id"]).reference
        assert np.array_equal(by_pipeline, by_editor)
        assert np.array_equal(by_editor, world.reference)  # filled: the mask, not its outline


def test_a_brush_over_the_pixel_limit_is_refused_before_decoding(world):
    config = parse_label_config(world.label_config)
    small = replace(world.settings, max_image_pixels=1000)
    from ls_backend.resources import Resources
    from ls_backend.errors import TaskError

    drawn = brush_result(config, "Reference", outline(world.reference))
    task = {**world.task(), "predictions": [{"id": 5, "result": [drawn]}]}
    choice = resolved(world, task, predictions=True).reference
    image = np.zeros((world.true_pose.height, world.true_pose.width, 3), np.uint8)
    with pytest.raises(TaskError, match="FINEPOSE_MAX_IMAGE_PIXELS"):
        reference_mask(choice, read_task(task, config), Resources(small), image, "car")


@pytest.mark.parametrize("bad", [True, "12", 10**400, None])
def test_numbers_that_are_not_numbers_are_passed_over(world, bad):
    numbers = {**dict(zip(PARAMETER_NAMES, world.true_pose.vector())), "focal": bad}
    task = {**world.task(pose=world.start_pose.to_dict()), "annotations": [annotation(numbers=numbers)]}
    found = resolved(world, task)
    assert found.start.source == "data.pose" and "focal" in found.note()
