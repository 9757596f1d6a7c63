"""A self-contained backend world for tests: a procedural car mesh with keypoints in a registry,
a synthetic photo and its reference mask rendered at a known pose, served as Label Studio
local-files URLs, and the finepose labeling config."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from geometry.masks import write_mask
from geometry.mesh import save_mesh
from geometry.pose import Pose
from geometry.procedural import car_mesh
from geometry.procedural_keypoints import car_keypoints
from geometry.render import SilhouetteRenderer
from ls_backend.templates import POSE_ANNOTATION, read_template
from ls_backend.settings import Settings
from ls_backend.resources import Resources

PHOTO_SIZE = (480, 320)
TRUE_POSE = Pose(azimuth=35.0, elevation=12.0, theta=2.0, distance=2.6, focal=560.0, u=246.0, v=168.0,
                 width=PHOTO_SIZE[0], height=PHOTO_SIZE[1])
START_POSE = replace(TRUE_POSE, azimuth=41.0, elevation=9.0, distance=2.75, u=252.0, v=163.0)


@dataclass
class World:
    root: Path
    settings: Settings
    resources: Resources
    label_config: str
    true_pose: Pose
    start_pose: Pose
    reference: np.ndarray
    renderer: SilhouetteRenderer

    def url(self, name: str) -> str:
        return f"/data/local-files/?d={name}"

    def task(self, task_id: int = 1, **data) -> dict:
        return {"id": task_id, "data": {"image": self.url("photo.png"), "model": "toy-car", **data}, "annotations": []}

    def human_annotation(self, pose: Pose) -> dict:
        result = [
            {"from_name": name, "to_name": "image", "type": "number", "value": {"number": value}}
            for name, value in zip(("azimuth", "elevation", "theta", "distance", "focal", "u", "v"), pose.vector())
        ]
        return {"id": 7, "result": result, "was_cancelled": False, "updated_at": "2026-11-24T08:00:00Z"}


def make_world(root: Path, photo_size: tuple[int, int] = PHOTO_SIZE, **settings) -> World:
    """The world in ``root``; ``photo_size`` (width, height) of the same aspect ratio as
    :data:`PHOTO_SIZE` scales the photo and the poses with it."""
    true_pose = TRUE_POSE.rescaled(*photo_size)
    start_pose = START_POSE.rescaled(*photo_size)
    mesh = car_mesh()
    save_mesh(root / "toy_car.ply", mesh)
    (root / "toy_car_keypoints.json").write_text(json.dumps({k: v.tolist() for k, v in car_keypoints().items()}))
    (root / "registry.json").write_text(json.dumps({"toy-car": {"mesh": "toy_car.ply", "frame": "pascal3d", "category": "car"}}))
    renderer = SilhouetteRenderer(mesh)
    reference = renderer.render(true_pose)
    photo = np.full((*reference.shape, 3), 90, np.uint8)
    photo[reference] = (200, 40, 40)
    Image.fromarray(photo).save(root / "photo.png")
    write_mask(root / "reference.png", reference)
    config = Settings(
        registry=root / "registry.json",
        local_files_roots=(root.resolve(),),
        model_dir=root / "model-dir",
        **settings,
    )
    return World(root, config, Resources(config), read_template(POSE_ANNOTATION), true_pose, start_pose, reference, renderer)
