"""Smart keypoints never return an absurd focal/distance pair: with few clicks the focal is
held at the release's median (FOCAL_PER_WIDTH x width) and the message says so."""

from __future__ import annotations

import numpy as np

from geometry.camera import project
from geometry.init_pose import FOCAL_PER_WIDTH
from geometry.pose import Pose
from geometry.procedural_keypoints import car_keypoints
from ls_backend.pipeline.smart import fit_keypoints, guidance

W, H = 600, 400
TRUE = Pose(azimuth=30.0, elevation=10.0, theta=0.0, distance=2.2, focal=FOCAL_PER_WIDTH * W * 1.3, u=300.0, v=210.0,
            width=W, height=H)


def clicks(names, noise=0.0, seed=0):
    keypoints = car_keypoints()
    xy = project(TRUE, np.array([keypoints[n] for n in names])) + np.random.default_rng(seed).normal(0, noise, (len(names), 2))
    return keypoints, {n: ((x + 0.5) / W * 100, (y + 0.5) / H * 100) for n, (x, y) in zip(names, xy)}


def test_four_wheels_hold_the_focal_and_say_so():
    keypoints, clicked = clicks(["left_front_wheel", "right_front_wheel", "left_back_wheel", "right_back_wheel"], noise=1.0)
    found = fit_keypoints(keypoints, clicked, W, H, np.eye(3))
    assert found.focal_held and abs(found.fit.pose.focal / (FOCAL_PER_WIDTH * W) - 1) < 0.02
    assert 0.5 < found.fit.pose.distance / TRUE.distance < 2.0  # no 11.7 / 10,999 px pair
    assert "focal held at the default 693 px: 4 points cannot fix it" in found.message


def test_enough_spread_clicks_fit_the_focal():
    names = sorted(car_keypoints())  # 12 points in depth
    keypoints, clicked = clicks(names)
    found = fit_keypoints(keypoints, clicked, W, H, np.eye(3))
    assert not found.focal_held and abs(found.fit.pose.focal / TRUE.focal - 1) < 0.05
    assert "focal held" not in found.message


def test_guidance_before_the_fourth_click():
    assert guidance(1).startswith("1 of 4 keypoints placed: click 3 more")
    assert guidance(3).startswith("3 of 4 keypoints placed: click 1 more")
