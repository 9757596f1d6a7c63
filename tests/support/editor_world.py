"""A served pose editor for browser tests: registry meshes, photos, references and tasks.

Tasks come from :class:`LocalSource`, an in-memory stand-in for Label Studio's task API
(the same four calls as ``ls_backend.editor.source.LabelStudioSource``); the round trip
through a real Label Studio is tests/e2e/test_editor_e2e.py's. The editor's routes are the real
ones (its blueprint), served on a loopback port.
"""

from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from geometry.masks import write_mask
from geometry.pose import Pose
from ls_backend.resources import Resources
from ls_backend.editor import create_editor_blueprint
from ls_backend.editor.links import LinkSigner, task_url
from ls_backend.errors import AccessRefused, TaskError
from ls_backend.settings import Settings
from ls_backend.templates import POSE_ANNOTATION, read_template

SECRET = "editor-test-secret"


ANNOTATOR_TOKEN = "annotator-token"  # what the in-memory Label Studio accepts as a person's own token
ANNOTATOR = {"id": 7, "email": "annotator@finepose.test"}


def sign_in(client, task: int, link_token: str, token: str = ANNOTATOR_TOKEN):
    """Sign a Flask test client in as the annotator of ``token`` (the editor's session cookie)."""
    return client.post(f"/editor/{task}/session?t={link_token}", json={"token": token})


class LocalSource:
    """Tasks of one project in memory; annotations are appended to the task."""

    def __init__(self, tasks: dict[int, dict], label_config: str, project: int = 1, people: dict | None = None):
        self.tasks = tasks
        self.config = label_config
        self.project = project
        #: token -> (whoami answer, projects the person may open), Label Studio's part in signing in
        self.people = people if people is not None else {ANNOTATOR_TOKEN: (ANNOTATOR, {project})}

    def task(self, task_id: int, project_id: int | None = None) -> dict:
        if int(task_id) not in self.tasks:
            raise TaskError(f"no task {task_id}")
        return copy.deepcopy({**self.tasks[int(task_id)], "id": int(task_id), "project": self.project})

    def label_config(self, project_id: int) -> str:
        return self.config

    def create_annotation(self, task_id: int, result: list, lead_time, completed_by: int) -> int:
        annotations = self.tasks[int(task_id)].setdefault("annotations", [])
        annotations.append({"id": 100 + len(annotations), "result": result, "lead_time": lead_time,
                            "completed_by": completed_by, "updated_at": "2026-11-30T00:00:00Z"})
        return annotations[-1]["id"]

    def annotator(self, token: str, project_id: int) -> dict:
        if token not in self.people:
            raise AccessRefused("Label Studio refused your Personal Access Token: HTTP 401")
        user, projects = self.people[token]
        if int(project_id) not in projects:
            raise AccessRefused(f"Label Studio does not let {user['email']} open project {project_id} (HTTP 404)")
        return dict(user)

    def next_unannotated(self, project_id: int, after):
        free = sorted(t for t, task in self.tasks.items() if not task.get("annotations"))
        later = [t for t in free if after is None or t > after]
        return (later or [t for t in free if t != after] or [None])[0]


@dataclass
class EditorWorld:
    root: Path
    settings: Settings
    resources: Resources
    source: LocalSource
    poses: dict = field(default_factory=dict)  # task id -> start Pose
    references: dict = field(default_factory=dict)  # task id -> reference mask (photo size)
    models: dict = field(default_factory=dict)  # task id -> model id

    def url(self, base: str, task_id: int) -> str:
        return task_url(base, LinkSigner(self.settings), self.source.project, task_id)

    def renderer(self, task_id: int):
        return self.resources.require_registry().renderer(self.models[task_id])


def make_editor_world(root: Path, models: dict[str, dict], poses: dict[str, Pose], photo_size=(640, 480),
                      reference_poses: dict[str, Pose] | None = None) -> EditorWorld:
    """``models``: registry entries by id (absolute mesh paths); ``poses``: each model's start
    pose (task data.pose); a reference rendered at ``reference_poses[model]`` (default: the
    start pose), also painted into the photo (the first model's). Task ids are 1, 2, ... in
    the order of ``models``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "registry.json").write_text(json.dumps(models))
    width, height = photo_size
    yy, xx = np.mgrid[0:height, 0:width]
    photo = np.stack([90 + 60 * xx / width, 100 + 40 * yy / height, 120 + 0 * xx], axis=-1).astype(np.uint8)
    settings = Settings(registry=root / "registry.json", local_files_roots=(root.resolve(),), model_dir=root / "model-dir",
                        editor_secret=SECRET)
    resources = Resources(settings)
    tasks, world_poses, references, task_models = {}, {}, {}, {}
    for task_id, model_id in enumerate(models, start=1):
        pose = poses[model_id]
        reference = resources.require_registry().renderer(model_id).render((reference_poses or poses).get(model_id, pose))
        write_mask(root / f"reference-{task_id}.png", reference)
        tasks[task_id] = {"data": {"image": "/data/local-files/?d=photo.png", "model": model_id, "pose": pose.to_dict(),
                                   "reference": f"/data/local-files/?d=reference-{task_id}.png", "editor": ""},
                          "annotations": [], "predictions": []}
        world_poses[task_id], references[task_id], task_models[task_id] = pose, reference, model_id
    first = references[1]
    photo[first] = (0.35 * photo[first] + 0.65 * np.array([200, 60, 50])).astype(np.uint8)
    Image.fromarray(photo).save(root / "photo.png")
    source = LocalSource(tasks, read_template(POSE_ANNOTATION))
    return EditorWorld(root, settings, resources, source, world_poses, references, task_models)


@contextmanager
def serving_editor(world: EditorWorld):
    """The editor's blueprint on tasks of ``world.source``, with the backend's error handler,
    served on a loopback port; yields its base URL."""
    from flask import Flask

    from ls_backend.server.app import error_handler
    from tests.support.backend_client import serving

    app = Flask("finepose-editor-test")
    app.register_blueprint(create_editor_blueprint(world.resources, source=world.source))
    app.register_error_handler(Exception, error_handler(world.resources))
    with serving(app) as url:
        yield url


def unpack(answer: dict) -> np.ndarray:
    """A mask read back from the page (``readCanvasMask``'s packed bits) as booleans."""
    import base64

    bits = np.unpackbits(np.frombuffer(base64.b64decode(answer["bits"]), np.uint8))
    return bits[: answer["width"] * answer["height"]].reshape(answer["height"], answer["width"]).astype(bool)
