"""Point 7 of issue 10: photos that name no model (uploaded through Label Studio's Import) get
it from the project's labeling config: the model the annotator picks in its ``model`` list,
else the list's preselected choice (the project default); with neither, the error says what
to do."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from geometry.iou import iou
from ls_backend.server.app import create_app
from ls_backend.studio.label_config import parse_label_config
from ls_backend.errors import LabelConfigError
from ls_backend.registry.label_config import label_config_for, model_choices
from tests.support.world import make_world
from tests.support.backend_client import brushes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("model-choice"))


@pytest.fixture(scope="module")
def client(world):
    return create_app(world.resources).test_client()


def predict(client, world, task, config):
    return client.post("/predict", json={"tasks": [task], "label_config": config, "project": "4.1",
                                         "params": {"context": {}}})


def uploaded(world, task_id=1):
    """A task as Label Studio's Import makes it from a photo: the image and nothing else."""
    task = world.task(task_id=task_id, reference=world.url("reference.png"), pose=world.start_pose.to_dict())
    del task["data"]["model"]
    return task


def model_picked(prediction):
    return [r["value"]["choices"] for r in prediction["result"] if r["type"] == "choices"]


def test_the_label_config_lists_the_registry_models_with_the_default_preselected(world):
    text, summary = label_config_for(world.resources.registry, default="toy-car")
    assert summary == {"category": "car", "models": 1, "default": "toy-car"}
    config = parse_label_config(text)
    assert (config.model_choice, config.model_ids, config.default_model) == ("model", ("toy-car",), "toy-car")
    assert "$model" not in text  # the header no longer shows "undefined" for uploaded photos
    assert parse_label_config(label_config_for(world.resources.registry)[0]).default_model is None
    two = text.replace(model_choices(["toy-car"], "toy-car"), model_choices(["toy-car", "other"], "toy-car")
                       .replace('"other"', '"other" selected="true"'))
    with pytest.raises(LabelConfigError, match="preselects 2 models"):
        parse_label_config(two)


def test_an_uploaded_photo_is_predicted_with_the_project_default(client, world):
    config = label_config_for(world.resources.registry, default="toy-car")[0]
    response = predict(client, world, uploaded(world), config)
    assert response.status_code == 200, response.get_json()
    [prediction] = response.get_json()["results"]
    assert iou(brushes(prediction)["Projection"], world.reference) > 0.97
    assert model_picked(prediction) == [["toy-car"]]  # shown in the list, the annotator can change it


def test_the_model_picked_on_the_labeling_screen_comes_first(client, world):
    config = label_config_for(world.resources.registry)[0]  # no default
    task = uploaded(world, task_id=2)
    task["data"]["model"] = "a-wrong-model"  # the annotator corrected it in the list
    annotation = world.human_annotation(world.start_pose)
    annotation["result"].append({"from_name": "model", "to_name": "image", "type": "choices",
                                 "value": {"choices": ["toy-car"]}})
    task["annotations"] = [annotation]
    response = predict(client, world, task, config)
    assert response.status_code == 200, response.get_json()
    annotation["result"][-1]["value"]["choices"] = ["not-in-registry"]
    refused = predict(client, world, task, config)
    assert refused.status_code == 404 and "the model came from the annotation" in refused.get_json()["error"]


@pytest.mark.parametrize("with_list, words", [
    (True, "pick one in the labeling screen's model list"),
    (False, "finepose registry label-config --registry REGISTRY --default MODEL_ID"),
])
def test_no_model_anywhere_says_what_to_do(client, world, with_list, words):
    config = label_config_for(world.resources.registry)[0] if with_list else world.label_config
    response = predict(client, world, uploaded(world, task_id=3), config)
    assert response.status_code == 422 and words in response.get_json()["error"], response.get_json()


def test_the_cli_writes_the_label_config(world, tmp_path):
    out = tmp_path / "config.xml"
    run = subprocess.run([sys.executable, "-m", "ls_backend.cli", "registry", "label-config", "--registry",
                          str(world.root / "registry.json"), "--default", "toy-car", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["default"] == "toy-car"
    assert parse_label_config(out.read_text()).default_model == "toy-car"
    bad = subprocess.run([sys.executable, "-m", "ls_backend.cli", "registry", "label-config", "--registry",
                          str(world.root / "registry.json"), "--default", "nope", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "'nope' is not a car model of the registry" in bad.stderr
