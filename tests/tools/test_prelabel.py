"""Which tasks ``finepose prelabel`` predicts: those without a prediction of the backend's
version, and those of a model whose mesh or frame changed; adding a model to the registry
re-predicts nothing."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import pytest

from ls_backend.registry import Registry
from ls_backend.resources import Resources
from ls_backend.studio.label_config import parse_label_config
from ls_backend.tools.prelabel import plan, reason_group
from tests.support.world import make_world


@pytest.fixture
def world(tmp_path):
    world = make_world(tmp_path)
    shutil.copy(tmp_path / "toy_car.ply", tmp_path / "other_car.ply")
    return world


def registry_with(world, **entries) -> Registry:
    path = world.root / "registry.json"
    path.write_text(json.dumps(entries))
    return Registry.load(path)


def test_adding_a_model_keeps_the_model_version(world):
    one = Resources(world.settings)
    (world.root / "two.json").write_text(json.dumps({
        "toy-car": {"mesh": "toy_car.ply", "category": "car"}, "other-car": {"mesh": "other_car.ply", "category": "car"}}))
    two = Resources(replace(world.settings, registry=world.root / "two.json"))
    assert one.model_version == two.model_version


def test_plan_redoes_only_the_tasks_of_a_changed_model(world):
    config = parse_label_config(world.label_config)
    version = Resources(world.settings).model_version
    cars = {"toy-car": {"mesh": "toy_car.ply", "category": "car"}, "other-car": {"mesh": "other_car.ply", "category": "car"}}
    registry = registry_with(world, **cars)
    done = {"model_version": version, "id": 50, "result": []}
    tasks = [{**world.task(task_id=1), "predictions": [done]},
             {**world.task(task_id=2, model="other-car"), "predictions": [{**done, "id": 51}]},
             world.task(task_id=3, model="other-car")]  # never predicted
    recorded = {1: registry.fingerprint("toy-car"), 2: registry.fingerprint("other-car")}
    assert [t["id"] for t in plan(tasks, config, version, registry, recorded).todo] == [3]
    # other-car's mesh file is touched or moved: nothing to redo
    os.utime(world.root / "other_car.ply", ns=(1, 1))
    assert [t["id"] for t in plan(tasks, config, version, Registry.load(world.root / "registry.json"), recorded).todo] == [3]
    # its content changes (a new export): its tasks are redone, their old predictions replaced
    with open(world.root / "other_car.ply", "ab") as f:
        f.write(b"\n")
    todo = plan(tasks, config, version, Registry.load(world.root / "registry.json"), recorded).todo
    assert [(t["id"], t["stale"]) for t in todo] == [(2, [51]), (3, [])]
    # a frame change too; and --redo-model names a model outright
    reframed = registry_with(world, **{**cars, "toy-car": {**cars["toy-car"], "frame": "shapenet"}})
    assert [t["id"] for t in plan(tasks, config, version, reframed, recorded).todo] == [1, 2, 3]
    assert [t["id"] for t in plan(tasks, config, version, registry_with(world, **cars), {}, {"toy-car"}).todo] == [1, 3]


def test_failures_group_by_reason_whatever_the_task():
    assert reason_group("task 5: data.image 'x.png' is missing") == reason_group("task 17: data.image 'x.png' is missing")
