"""Datasets in and out of Label Studio.

``import-seed``: a release pickle (human ``*_anno.pkl``, optionally the refined
``*_anno_v2.pkl``) plus the image folder -> Label Studio tasks. ``data.pose`` is the release
record as it is (``"convention": "seed"`` with the original image size, so no number is
rewritten), ``data.model`` the record's ShapeNet model id (a registry id), ``data.source`` the
file, key and standard split; the refined pose, when given, becomes a prediction (7 numbers,
model version ``release-refined``). ``import-pascal3d``: Pascal3D+/ObjectNet3D ``viewpoint``
records (a JSON file ``{image: {azimuth, elevation, theta, distance, focal, px, py, viewport,
model, [image_width, image_height]}}``) the same way. Tasks are written to a JSON file and/or
imported into a project through label-studio-sdk.

``export``: a project's final poses -> the ``finepose-poses`` JSON (:mod:`.posesets`) and,
optionally, the release pickle format. The final pose of a task is its newest human
annotation's 7 numbers, else its imported ``data.pose`` (kept exactly): the backend's rule
(:func:`ls_backend.studio.resolve.resolve_task`), so an annotation holding an unusable number
is passed over, and the summary's ``passed_over`` says which and why. The split is the
imported standard split when every task has one; otherwise a seeded random 2/3 : 1/3 split,
recorded in the file.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from geometry.conventions import seed
from geometry.frames import express_in_frame
from geometry.pose import Pose
from geometry.pose_io import pose_from_dict, read_pose

from ls_backend.datasets.posesets import PoseRecord, load_pose_set, write_pose_set
from ls_backend.errors import DataError, FineposeError, UnknownModelError
from ls_backend.registry.build import RELEASE_MESH_FRAME
from ls_backend.studio.client import project_tasks
from ls_backend.studio.label_config import PoseConfig, parse_label_config
from ls_backend.studio.predictions import number_result, pose_numbers
from ls_backend.studio.resolve import resolve_task
from ls_backend.studio.taskdata import import_fields
from ls_backend.studio.tasks import annotated_numbers, newest_annotation, read_task
from ls_backend.templates import POSE_ANNOTATION, read_template

RELEASE_VERSION = "release-refined"
TEST_FRACTION = 1.0 / 3.0


class DatasetError(DataError):
    """A dataset file, image folder or project that cannot be imported or exported."""


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image file's header."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def model_frame_of(registry, model_id, imported_pose) -> object | None:
    """The frame a task's seven numbers are in, for import and export alike: its model's
    registry frame; for a model the registry does not hold (or without a registry) and a task
    imported from the release (``data.pose`` a seed record), ``shapenet_core``, the release
    meshes' own frame; else None (``data.pose``'s own frame)."""
    if registry is not None:
        try:
            return registry.entry(model_id).frame_matrix
        except UnknownModelError:
            pass
    if isinstance(imported_pose, dict) and imported_pose.get("convention") == "seed":
        return RELEASE_MESH_FRAME
    return None


def seed_tasks(human: Path, images: Path, url_template: str, refined: Path | None = None,
               label_config: str | None = None, registry=None) -> tuple[list[dict], list[str]]:
    """Tasks for every record of ``human`` whose image is in ``images``; also the missing names.

    ``url_template``: the task image URL with ``{name}`` for the file name, e.g.
    ``/data/local-files/?d=stanford_cars/{name}``. ``data.pose`` keeps each record as it is
    (it names its convention, so it is read in any model frame); the refined poses become
    predictions whose numbers are in the model's frame (:func:`model_frame_of` with the
    backend's ``registry``), so they mean what Label Studio's labels say.
    """
    config = parse_label_config(label_config or read_template(POSE_ANNOTATION))
    extra = import_fields(label_config or read_template(POSE_ANNOTATION))
    records = load_pose_set(human)
    refined_set = load_pose_set(refined) if refined else {}
    tasks, missing = [], []
    for name, record in tqdm(sorted(records.items()), desc=f"import {Path(human).name}", unit="image"):
        path = images / record.image
        if not path.is_file():
            missing.append(record.image)
            continue
        width, height = image_size(path)
        pose = {"convention": "seed", **record.release, "model_id": record.model, "image_width": width, "image_height": height}
        task = {
            "data": {
                config.image_key: url_template.format(name=record.image),
                "model": record.model,
                "pose": pose,
                "source": {"file": Path(human).name, "key": record.image, "split": record.split},
                **extra,
            }
        }
        if name in refined_set:
            refined_pose = express_in_frame(refined_set[name].pose_for(width, height),
                                            model_frame_of(registry, record.model, pose))
            result = [number_result(config, k, v) for k, v in pose_numbers(refined_pose).items()]
            task["predictions"] = [{"model_version": RELEASE_VERSION, "result": result}]
        tasks.append(task)
    return tasks, missing


def pascal3d_tasks(viewpoints: Path, images: Path, url_template: str, label_config: str | None = None):
    """Tasks from Pascal3D+/ObjectNet3D viewpoint records (see the module docstring)."""
    config = parse_label_config(label_config or read_template(POSE_ANNOTATION))
    extra = import_fields(label_config or read_template(POSE_ANNOTATION))
    try:
        records = json.loads(Path(viewpoints).read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{viewpoints}: not a JSON object of viewpoint records ({exc})") from None
    tasks, missing = [], []
    for name, record in sorted(records.items()):
        path = images / name
        if not path.is_file():
            missing.append(name)
            continue
        width, height = image_size(path)
        pose = {"convention": "pascal3d", **{k: v for k, v in record.items() if k != "model"},
                "image_width": width, "image_height": height}
        pose_from_dict(pose)  # refuse a bad record now, naming it
        data = {config.image_key: url_template.format(name=name), "model": record.get("model"), "pose": pose,
                "source": {"file": Path(viewpoints).name, "key": name, "split": None}, **extra}
        tasks.append({"data": data})
    return tasks, missing


def import_into_project(client, project_id: int, tasks: list[dict], batch: int = 500) -> int:
    """Import ``tasks`` into a project through the SDK; returns how many were created."""
    created = 0
    for start in tqdm(range(0, len(tasks), batch), desc=f"project {project_id}", unit="batch"):
        response = client.projects.import_tasks(id=project_id, request=tasks[start : start + batch], return_task_ids=True)
        created += len(getattr(response, "task_ids", None) or []) or (response.task_count or 0)
    return created


@dataclass(frozen=True)
class _ModelFrame:
    """What :func:`ls_backend.studio.resolve.resolve_task` reads of a registry entry."""

    frame: str | None
    frame_matrix: np.ndarray


def final_pose(task: dict, model_frame=None, config: PoseConfig | None = None) -> tuple[Pose, str, str]:
    """The task's final canonical pose at the image's size, where it came from
    (``annotation``/``data.pose``) and which start was passed over and why ("" if none), by
    the one rule of :func:`ls_backend.studio.resolve.resolve_task`. ``model_frame``: the frame
    of the task's model (its registry entry's), which annotated numbers are in and
    ``data.pose`` is expressed in (the frame rule, as in the backend); None: ``data.pose``'s own
    frame. ``config``: the project's labeling config (default: finepose's template)."""
    data = task.get("data") or {}
    imported = data.get("pose")
    if not isinstance(imported, dict):
        if annotated_numbers((newest_annotation(task.get("annotations") or []) or {}).get("result")) is not None:
            raise DatasetError(f"task {task.get('id')}: annotated, but data.pose (the image size) is missing")
        raise DatasetError(f"task {task.get('id')}: no annotated pose and no data.pose")
    config = config or parse_label_config(read_template(POSE_ANNOTATION))
    try:
        frame = _ModelFrame(model_frame, read_pose(imported, model_frame=model_frame).mesh_frame)
        width, height = int(imported["image_width"]), int(imported["image_height"])
        inputs = read_task({**task, "data": {"model": "-", **data}}, config)
        found = resolve_task(task, inputs, config, frame, width, height)
    except (FineposeError, ValueError, KeyError) as exc:
        raise DatasetError(f"task {task.get('id')}: {exc}") from None
    if found.start is None:
        raise DatasetError(f"task {task.get('id')}: no usable pose ({found.note()})")
    return found.start.pose, found.start.source, found.note()


def export_project(client, project_id: int, out: Path, pickle_out: Path | None = None, seed_value: int = 0,
                   registry=None) -> dict:
    """Write a project's final poses (see the module docstring); returns a summary. With the
    backend's ``registry``, poses are in each model's frame, as the backend showed them."""
    tasks = list(project_tasks(client, project_id))
    if not tasks:
        raise DatasetError(f"project {project_id} has no tasks")
    config = parse_label_config(client.projects.get(id=project_id).label_config)
    rows, passed_over = [], {}
    for task in tqdm(tasks, desc=f"export project {project_id}", unit="task"):
        model_frame = model_frame_of(registry, task["data"].get("model"), task["data"].get("pose"))
        pose, origin, note = final_pose(task, model_frame, config)
        if note:
            passed_over[task["id"]] = note
        source = task["data"].get("source") or {}
        name = source.get("key") or f"task-{task['id']}"
        rows.append((name, task["data"].get("model"), source.get("split"), pose, origin, task["data"].get("pose")))
    splits, split_info = _splits([r[0] for r in rows], [r[2] for r in rows], seed_value)
    records = [PoseRecord(image=r[0], model=r[1], split=splits[r[0]], pose=r[3]) for r in rows]
    write_pose_set(out, records, split_info)
    if pickle_out is not None:
        write_release_pickle(pickle_out, rows)
    return {"project": project_id, "tasks": len(rows), "annotated": sum(r[4] == "annotation" for r in rows),
            "passed_over": passed_over, "split": split_info, "out": str(out), "pickle": str(pickle_out) if pickle_out else None}


def write_release_pickle(path: Path, rows) -> None:
    """The release's pickle format: ``{image: {model_id, azimuth, ..., f, u, v}}`` (radians)."""
    records = {}
    for name, model, _split, pose, origin, imported in rows:
        if origin == "data.pose" and isinstance(imported, dict) and imported.get("convention") == "seed":
            records[name] = {"model_id": model, **{k: imported[k] for k in seed.FIELDS}}  # as imported
            continue
        release_frame = express_in_frame(pose, "shapenet_seed")  # the release's convention, at export only
        records[name] = seed.from_pose(release_frame, pose.width, pose.height, model_id=model)
    with open(path, "wb") as f:
        pickle.dump(records, f, protocol=2)


def _splits(names, given, seed_value: int) -> tuple[dict, dict]:
    if all(split in ("train", "test") for split in given):
        return dict(zip(names, given)), {"method": "standard", "seed": None, "test_fraction": None}
    rng = np.random.default_rng(seed_value)
    order = sorted(names)
    test = set(np.asarray(order, dtype=object)[rng.permutation(len(order))[: round(len(order) * TEST_FRACTION)]])
    return {n: "test" if n in test else "train" for n in names}, {
        "method": "random", "seed": seed_value, "test_fraction": TEST_FRACTION}


def import_tasks(tasks: list[dict], missing: list[str], images: Path, out: Path | None = None,
                 project: int | None = None, client=None) -> dict:
    """Write ``tasks`` to the JSON file ``out`` and/or import them into ``project`` (through
    ``client``); returns a summary with the number of records whose image was missing."""
    if not tasks:
        raise DatasetError(f"no task made: none of the records' images is in {images}")
    summary = {"tasks": len(tasks), "missing_images": len(missing), "first_missing": missing[:10]}
    if out:
        out.write_text(json.dumps(tasks, indent=1))
        summary["out"] = str(out)
    if project:
        summary["imported"] = import_into_project(client, project, tasks)
    return summary


def release_pose_json(anno: Path, key: str, width: int, height: int) -> dict:
    """Record ``key`` (an image file name) of the release pickle ``anno`` as canonical pose
    JSON for an original image of ``width`` x ``height`` px, naming its mesh frame
    (``shapenet_seed``) and its source."""
    records = load_pose_set(anno)
    if key not in records:
        raise DatasetError(f"{anno}: no record for {key!r}")
    record = records[key]
    if record.release is None:
        raise DatasetError(f"{anno}: not a release pickle")
    pose = seed.to_pose(record.release, width, height)
    out = pose.to_dict()
    out["mesh_frame"] = {"name": "shapenet_seed", "matrix": pose.mesh_frame.tolist()}
    out["source"] = {"convention": "seed", "file": str(anno), "key": key, "model_id": record.model,
                     "original_size": [width, height]}
    return out
