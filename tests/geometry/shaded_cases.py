"""Shaded overlays rendered in this process (geometry/shaded.py): the OffscreenRenderer camera
must match finepose's. Not collected on its own (no ``test_`` prefix): ``tests/geometry/test_shaded.py``
runs this file in a child process with a time limit, since Filament on a software Vulkan
driver now and then deadlocks in ``FilamentRenderer::BeginFrame`` (seen once in about six full
runs, in a process that had run the whole suite before).

Needs a working Open3D OffscreenRenderer (Vulkan: libvulkan1 + mesa-vulkan-drivers on a CPU
machine); the tests skip, saying why, where the probe fails. One renderer is shared by the
whole module (creating Filament engines is slow and destroying them is fragile).
"""

from __future__ import annotations

import numpy as np
import pytest

from geometry.frames import FRAMES
from geometry.iou import iou
from geometry.pose import Pose


@pytest.fixture(scope="module")
def shaded(car):
    from geometry import shaded as module

    if not module.shaded_available():
        pytest.skip(f"no shaded rendering here: {module.shaded_unavailable_reason()}")
    return module.ShadedRenderer(car)


POSES = {
    "canonical": Pose(30.0, 15.0, 5.0, 3.0, 800.0, 310.0, 190.0, 600, 400),
    "shapenet_seed (mirrored)": Pose(
        -120.0, 25.0, -8.0, 2.5, 700.0, 290.0, 210.0, 600, 400, mesh_frame=FRAMES["shapenet_seed"]
    ),
    "shapenet, smaller image": Pose(200.0, 10.0, 0.0, 2.5, 350.0, 150.0, 100.0, 300, 200, mesh_frame=FRAMES["shapenet"]),
}


@pytest.mark.parametrize("name", list(POSES))
def test_shaded_coverage_is_the_exact_silhouette(shaded, car_renderer, name):
    pose = POSES[name]
    rgba = shaded.render(pose)
    assert rgba.shape == (pose.height, pose.width, 4) and rgba.dtype == np.uint8
    covered = rgba[..., 3] > 0
    silhouette = car_renderer.render(pose)
    assert iou(covered, silhouette) > 0.98
    # The model is lit: visible, not black, and not one flat colour.
    grey = rgba[..., :3][covered].astype(float).mean(axis=1)
    assert grey.mean() > 40 and grey.std() > 3


def test_rgb_render_matches_coverage(shaded, car_renderer):
    pose = POSES["canonical"]
    rgb = shaded.render(pose, alpha=False)
    assert rgb.shape == (pose.height, pose.width, 3)
    # Black background, lit grey model: the non-black pixels are the silhouette (the
    # model's darkest shading stays well above 0).
    assert iou(rgb.max(axis=-1) > 8, car_renderer.render(pose)) > 0.98


def test_shaded_overlay_keeps_the_image_size(shaded, car_renderer):
    from geometry.shaded import OUTLINE_COLOUR, shaded_overlay

    photo = np.full((200, 300, 3), 120, dtype=np.uint8)  # half the pose's 600x400
    pose = POSES["canonical"]
    out = shaded_overlay(photo, shaded, pose, alpha=0.5)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.all(out[0, 0] == 120)  # background untouched
    drawn = np.all(out == np.array(OUTLINE_COLOUR, dtype=np.uint8), axis=-1)
    assert drawn.any()
    silhouette = car_renderer.render(pose.rescaled(300, 200))
    assert silhouette[drawn].mean() > 0.95  # the outline lies on the silhouette
    assert shaded_overlay(None, shaded, pose).shape == (400, 600, 3)
    grey = shaded_overlay(photo[..., 0], shaded, pose)
    assert grey.shape == photo.shape
