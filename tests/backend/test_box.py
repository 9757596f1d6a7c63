"""Point 6 of issue 10: the smart rectangle picks the object inside the box (two cars in one
photo: the reference restricted to the boxed car, the initial pose kept and moved onto it)
and says when it changes nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from geometry.box import objects_in_box
from geometry.iou import iou
from geometry.masks import write_mask
from ls_backend.server.app import create_app
from ls_backend.segmentation.combine import combine_masks
from tests.support.world import TRUE_POSE, make_world
from tests.support.backend_client import brushes, numbers, predict

CAR_A = replace(TRUE_POSE, distance=5.0, u=120.0, v=170.0)  # left, seen as the world's car
CAR_B = replace(TRUE_POSE, azimuth=70.0, distance=4.5, u=350.0, v=165.0)  # right, turned


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("box"))
    world.car_a, world.car_b = world.renderer.render(CAR_A), world.renderer.render(CAR_B)
    write_mask(world.root / "two_cars.png", world.car_a | world.car_b)
    return world


@pytest.fixture(scope="module")
def client(world):
    return create_app(world.resources).test_client()


def box_around(mask, world, pad=8):
    ys, xs = np.nonzero(mask)
    w, h = world.true_pose.width, world.true_pose.height
    box = {"x": (xs.min() - pad) / w * 100, "y": (ys.min() - pad) / h * 100,
           "width": (xs.max() - xs.min() + 2 * pad) / w * 100, "height": (ys.max() - ys.min() + 2 * pad) / h * 100}
    return {"from_name": "box", "to_name": "image", "type": "rectanglelabels",
            "value": {**box, "rectanglelabels": ["Car to pose"]}}


def message(prediction) -> str:
    [text] = [r["value"]["text"][0] for r in prediction["result"] if r["type"] == "textarea"]
    return text


def test_a_box_around_the_second_car_fits_the_pose_to_it(client, world):
    # The initial pose (data.pose) is on the first car; the box is drawn around the second.
    task = world.task(task_id=61, reference=world.url("two_cars.png"), pose=replace(CAR_A, azimuth=45.0).to_dict())
    [plain] = predict(client, world, [task]).get_json()["results"]
    if isinstance(plain, list):  # a front/back rival first, the best prediction last
        plain = plain[-1]
    assert iou(brushes(plain)["Projection"], world.car_b) < 0.05  # without the box: the first car
    [boxed] = predict(client, world, [task], {"result": [box_around(world.car_b, world)]}).get_json()["results"]
    projection = brushes(boxed)["Projection"]
    assert iou(projection, world.car_b) > 0.95, iou(projection, world.car_b)
    assert iou(brushes(boxed)["Reference"], world.car_b) > 0.99  # the reference drawn is the boxed car only
    said = message(boxed)
    assert "the box keeps 1 of the reference's 2 objects" in said and "moved into the box" in said, said


def test_a_box_around_the_only_object_says_it_changes_nothing(client, world):
    task = world.task(task_id=62, reference=world.url("reference.png"), pose=world.start_pose.to_dict())
    [plain] = predict(client, world, [task]).get_json()["results"]
    [boxed] = predict(client, world, [task], {"result": [box_around(world.reference, world)]}).get_json()["results"]
    assert "its one object lies in the box, so the box changes nothing here" in message(boxed)
    assert numbers(boxed) == numbers(plain)  # the same pose as without the box


def test_a_box_on_empty_ground_says_what_to_do(client, world):
    task = world.task(task_id=63, reference=world.url("reference.png"))
    region = box_around(world.reference, world)
    region["value"].update(x=1.0, y=1.0, width=5.0, height=5.0)
    [answer] = predict(client, world, [task], {"result": [region]}).get_json()["results"]
    assert "the rectangle holds none of the reference mask" in message(answer)


def test_objects_in_box_keeps_the_parts_mostly_inside():
    mask = np.zeros((40, 60), bool)
    mask[5:15, 5:20] = True  # object 1
    mask[20:35, 30:55] = True  # object 2
    mask[2, 58] = True  # a speck
    box = np.zeros_like(mask)
    box[18:38, 25:58] = True
    pick = objects_in_box(mask, box)
    assert (pick.objects, pick.kept, pick.clipped) == (2, 1, False)
    assert pick.mask.sum() == 15 * 25 and not pick.mask[10, 10]
    half = np.zeros_like(mask)
    half[:, 45:] = True  # cuts object 2, holding under half of it
    pick = objects_in_box(mask, half)
    assert pick.clipped and pick.mask.sum() == (mask & half).sum()


def test_segmentation_takes_the_instance_best_inside_the_box():
    semantic = np.zeros((40, 60), bool)
    first, second = semantic.copy(), semantic.copy()
    first[5:25, 5:30] = True
    second[10:30, 35:55] = True
    masks, scores = np.stack([first, second]), np.array([0.99, 0.7])
    box = np.zeros_like(semantic)
    box[8:32, 33:57] = True
    # without a box the initial projection (on the first car) picks the first instance
    assert combine_masks(masks, scores, first | second, initial_mask=first).instance_index == 0
    chosen = combine_masks(masks, scores, first | second, initial_mask=first, box_mask=box)
    assert chosen.instance_index == 1 and chosen.source == "maskrcnn"
    # Mask R-CNN found only the first car; the box is around DeepLab's other object: that object
    lone = combine_masks(masks[:1], scores[:1], first | second, box_mask=box)
    assert lone.source == "deeplab" and (lone.mask == second).all()
