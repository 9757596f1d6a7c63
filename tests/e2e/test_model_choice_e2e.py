"""Point 7 of issue 10 against a real Label Studio 1.23.2: a photo uploaded through Label
Studio's own Import (task data: the image only) is predicted with the project's default model
from the labeling config that ``finepose registry label-config`` wrote; in a project with no
default, the task's finepose_error says what to do.

The photo has no reference mask and the segmentation weights are not on this machine, so the
backend's segmenter is replaced by one that answers the photo's known car mask (what the
models would find); everything else is the backend as served."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ls_backend.studio import taskdata as status
from ls_backend.server.app import create_app
from ls_backend.resources import Resources
from ls_backend.registry.label_config import label_config_for
from ls_backend.segmentation.models import SegmentationResult
from tests.support.world import make_world
from tests.support.backend_client import serving

pytestmark = pytest.mark.e2e


class KnownMask:
    """A segmenter answering one known mask (the photo's car)."""

    def __init__(self, mask):
        self.mask = mask

    def segment(self, image, category, initial_mask=None, box_mask=None):
        assert image.shape[:2] == self.mask.shape
        return SegmentationResult(self.mask, "deeplab", 0, (), None, category)


class PlantedResources(Resources):
    def __init__(self, settings, mask):
        super().__init__(settings)
        self._segmenter = KnownMask(mask)

    def segmenter(self):
        return self._segmenter


def upload(ls, project_id: int, photo) -> int:
    """Label Studio's Import dialog: the photo file posted to the project's import endpoint."""
    with open(photo, "rb") as f:
        r = ls.api("POST", f"/api/projects/{project_id}/import", files={"file": ("photo.png", f, "image/png")})
    assert r.status_code == 201, r.text
    [task] = ls.client().tasks.list(project=project_id)
    assert set(task.data) == {"image"} and task.data["image"].startswith("/data/upload/")
    return task.id


def test_an_uploaded_photo_gets_the_project_default_model(label_studio, tmp_path):
    ls = label_studio
    world = make_world(tmp_path)
    settings = replace(world.settings, label_studio_url=ls.url, api_key=ls.api_key, local_files_roots=())
    client = ls.client()
    with serving(create_app(PlantedResources(settings, world.reference))) as backend:
        results = {}
        for default in ("toy-car", None):
            config = label_config_for(world.resources.registry, default=default)[0]
            project = client.projects.create(title=f"uploads, default {default}", label_config=config)
            task = upload(ls, project.id, world.root / "photo.png")
            r = ls.api("POST", "/api/ml", json={"url": backend, "project": project.id, "title": "finepose"})
            assert r.status_code == 201, r.text
            r = ls.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project.id}",
                       json={"selectedItems": {"all": True, "excluded": []}})
            assert r.status_code == 200, r.text
            status.flush()
            results[default] = (client.predictions.list(task=task), client.tasks.get(id=task).data)
    [predicted], data = results["toy-car"]
    assert predicted.score > 0.97 and data.get("finepose_error", "") == ""
    assert [r["value"]["choices"] for r in predicted.result if r["type"] == "choices"] == [["toy-car"]]
    none, data = results[None]
    assert none == []
    assert "names no CAD model: pick one in the labeling screen's model list" in data["finepose_error"]
