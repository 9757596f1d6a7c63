"""``finepose project create``: a Label Studio project for a folder of photos, in one command.

What a team would otherwise click through (docs/label-studio.md, "Connect finepose", steps 4-7):

1. the project, with the pose template of the models' category (found by its title: running
   the command again adds only the photos it does not hold yet);
2. the photos (and reference masks, matched by file stem), uploaded to the project (Label
   Studio's defaults: the template then lists the models beside the photo, see
   :func:`_label_config`), or given as Local Files storage where the folders lie under Label
   Studio's local-files document root (``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``);
3. one task per photo: the photo, its model (``--model`` for all, ``--models`` per photo, or
   the registry's only model; else the template lists the models and annotators pick),
   its mask as ``data.reference``, its pose from ``--poses`` as ``data.pose``;
4. the backend connected with interactive pre-annotations on (``--backend URL``), the pose
   editor's links (``FINEPOSE_EDITOR_URL``) and a line of instructions.

Task data keeps the photo's file name in ``photo_file``: that is how a second run knows which
photos the project holds.
"""

from __future__ import annotations

import csv
from pathlib import Path
from urllib.parse import unquote

from PIL import Image

from ls_backend.errors import DataError
from ls_backend.registry.label_config import TEMPLATES, label_config_for
from ls_backend.studio.client import answered, project_tasks, set_instructions_block
from ls_backend.studio.project_media import give_files
from ls_backend.studio.taskdata import EDITOR_FIELD, ERROR_FIELD, import_fields
from ls_backend.tools.dataset import import_into_project
from ls_backend.templates import read_template

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # what Label Studio shows and uploads
FILE_FIELD = "photo_file"
INSTRUCTIONS = ("Place the CAD model over the object: type the seven numbers{editor}. Submit, and finepose "
                "refines your pose into a prediction beside it. Where finepose could not refine a task, {why} says why.")
EDITOR = ", or open the pose editor ({where}) and drag"
#: Where the editor's link and finepose's message are, by how the project got its photos.
WHERE = {"local files": ("the link above the photo", "the line beside that link"),
         "upload": ("the Pose editor link in these instructions, or the task's editor column in the Data Manager",
                    "the line above the photo")}


def photo_files(folder: Path) -> list[Path]:
    """The photos directly in ``folder`` (by suffix), in name order."""
    if not Path(folder).is_dir():
        raise DataError(f"photo folder not found: {folder}")
    photos = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise DataError(f"{folder} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
    return photos


def read_models_csv(path: Path) -> dict[str, str]:
    """``photo,model`` rows (a header row is skipped): photo file name -> model id."""
    try:
        rows = list(csv.reader(Path(path).read_text().splitlines()))
    except OSError as exc:
        raise DataError(f"--models {path}: {exc}") from None
    found = {row[0].strip(): row[1].strip() for row in rows if len(row) >= 2 and row[0].strip()}
    found.pop("photo", None)
    if not found:
        raise DataError(f"--models {path} holds no 'photo,model' rows")
    return found


def create_project(connection, settings, registry, title: str, photos: Path, *, model: str | None = None,
                   models: dict[str, str] | None = None, masks: Path | None = None, poses: Path | None = None,
                   backend_url: str | None = None, links=None) -> dict:
    """Make (or find by ``title``) the project and give it the photos it lacks; see the module.
    ``links(client, project_id, settings)``: writes the pose editor's links (the editor's own
    :func:`ls_backend.editor.links.fill_project_links`, passed in by the command line)."""
    files = photo_files(photos)
    assigned, unassigned = _assign(files, registry, model, models)
    local = _served_locally([photos, *([masks] if masks else [])], settings.local_files_document_root)
    category, config = _label_config(registry, assigned, files, local)
    client = connection.sdk()
    project, created = _project(client, title, config)
    config = project.label_config or config  # a project made earlier keeps its own config
    held = {_photo_name(t.get("data") or {}) for t in project_tasks(client, project.id)}
    new = [p for p in files if p.name not in held and p.name not in unassigned]
    mask_of = _masks(masks, new)
    pose_of = _poses(poses, new)
    folders = [Path(photos), *([Path(masks)] if masks else [])] if local else None
    urls = give_files(connection, project.id, [*new, *mask_of.values()], folders, settings.local_files_document_root)
    make_links = links is not None and bool(settings.editor_url)
    fields = {**import_fields(config), **({EDITOR_FIELD: "", ERROR_FIELD: ""} if make_links else {})}
    tasks = []
    for photo in new:
        data = {"image": urls[photo], FILE_FIELD: photo.name, **fields}
        if assigned.get(photo.name):
            data["model"] = assigned[photo.name]
        if photo in mask_of:
            data["reference"] = urls[mask_of[photo]]
        if photo in pose_of:
            data["pose"] = pose_of[photo]
        tasks.append({"data": data})
    if tasks:
        with answered(f"project {project.id}"):
            import_into_project(client, project.id, tasks)
    summary = {"project": project.id, "url": f"{connection.url}/projects/{project.id}/data", "created": created,
               "category": category, "added": len(tasks), "already_there": len(held & {p.name for p in files}),
               "without_model": sorted(unassigned), "masks": len(mask_of), "poses": len(pose_of),
               "media": "local files" if local else "upload"}
    if backend_url:
        summary["backend"] = _connect_backend(client, project.id, backend_url)
    if make_links:
        summary["editor"] = links(client, project.id, settings)
    where, why = WHERE[summary["media"]]
    set_instructions_block(client, project.id, "finepose-how-to",
                           INSTRUCTIONS.format(editor=EDITOR.format(where=where) if make_links else "", why=why))
    unmasked = len(new) - len(mask_of)
    if unmasked:
        summary.update(_weights_warning(settings, unmasked))
    return summary


def _weights_warning(settings, unmasked: int) -> dict:
    """A warning where photos without a mask meet segmentation weights missing on this machine
    (the backend's, when it runs here: their predictions fail until the weights are there)."""
    from ls_backend.segmentation.weights import WeightsConfig, status

    missing = [found["file"] for found in status(WeightsConfig.from_settings(settings), check=False).values() if not found["present"]]
    if not missing:
        return {}
    return {"warning": f"{unmasked} photo(s) have no mask and the segmentation weights are not installed on this "
                       f"machine ({', '.join(missing)}): their predictions fail until you run 'finepose weights "
                       "download' where the backend runs (about 400 MB, once; docs/settings.md) or give --masks"}


def _assign(files: list[Path], registry, model: str | None, models: dict | None) -> tuple[dict, set]:
    """photo name -> model id (None: annotators pick), and the photos ``--models`` leaves out."""
    if model is not None and models is not None:
        raise DataError("give --model (one model for every photo) or --models (per photo), not both")
    if model is not None:
        registry.entry(model)  # an unknown id is refused here, naming the registry's models
        return {p.name: model for p in files}, set()
    if models is not None:
        for model_id in set(models.values()):
            registry.entry(model_id)
        return {p.name: models[p.name] for p in files if p.name in models}, {p.name for p in files if p.name not in models}
    ids = list(registry.entries)
    return {p.name: ids[0] if len(ids) == 1 else None for p in files}, set()


def _label_config(registry, assigned: dict, files: list[Path], local: bool) -> tuple[str, str]:
    """(category, labeling config). Photos served as local files with a model each: the
    category's template. Uploaded photos: the template with the registry's models as a list
    (the task's model preselected through ``data.model``, one model the project's default),
    without the pose editor's link above the photo: Label Studio's upload serves only configs
    with one data key (the editor's link is in the instructions and the Data Manager instead)."""
    chosen = {m for m in assigned.values() if m}
    categories = {registry.entry(m).category for m in chosen} or {e.category for e in registry.entries.values()}
    if len(categories) != 1:
        raise DataError(f"the photos' models are of several categories ({', '.join(sorted(categories))}): "
                        "make one project per category")
    category = categories.pop()
    if local and all(assigned.get(p.name) for p in files if p.name in assigned):
        return category, read_template(TEMPLATES[category])
    return category, label_config_for(registry, category, default=chosen.pop() if len(chosen) == 1 else None)[0]


def _served_locally(folders: list[Path], root: Path | None) -> bool:
    """Whether every folder lies under Label Studio's local-files document root."""
    return root is not None and all(Path(f).resolve().is_relative_to(root) for f in folders)


def _project(client, title: str, config: str):
    """The project titled ``title`` (made with ``config`` when there is none), and whether it
    was made; several of that title are refused (which one would be meant?)."""
    with answered("the project list"):
        found = [p for p in client.projects.list(title=title) if p.title == title]
        if len(found) > 1:
            raise DataError(f"Label Studio has {len(found)} projects titled {title!r} "
                            f"(ids {', '.join(str(p.id) for p in found)}): give another --title or rename them")
        if found:
            return client.projects.get(id=found[0].id), False
        return client.projects.create(title=title, label_config=config), True


def _photo_name(data: dict) -> str:
    """The photo file a task holds: ``photo_file``, else the name in its image URL (a task
    imported by other means: an upload ``.../<8 hex>-<name>`` or a local file ``?d=.../<name>``)."""
    if data.get(FILE_FIELD):
        return str(data[FILE_FIELD])
    name = unquote(str(data.get("image") or "")).rsplit("/", 1)[-1].rsplit("=", 1)[-1]
    return name.split("-", 1)[1] if len(name) > 9 and name[8] == "-" and name[:8].isalnum() else name


def _masks(folder: Path | None, photos: list[Path]) -> dict[Path, Path]:
    if folder is None:
        return {}
    if not Path(folder).is_dir():
        raise DataError(f"mask folder not found: {folder}")
    by_stem = {p.stem: p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".bmp")}
    return {photo: by_stem[photo.stem] for photo in photos if photo.stem in by_stem}


def _poses(path: Path | None, photos: list[Path]) -> dict[Path, dict]:
    """photo -> its pose (finepose JSON at the photo's own size) from a pose set."""
    if path is None:
        return {}
    from ls_backend.datasets.posesets import by_image_key, image_key, load_pose_set

    records = by_image_key(load_pose_set(path))
    found = {}
    for photo in photos:
        record = records.get(image_key(photo.name))
        if record is not None:
            with Image.open(photo) as image:
                found[photo] = record.pose_for(*image.size).to_dict()
    return found


def _connect_backend(client, project_id: int, url: str) -> str:
    """Connect finepose's backend at ``url`` with interactive pre-annotations (once)."""
    url = url.rstrip("/")
    with answered(f"the ML backends of project {project_id}"):
        if any(str(b.url).rstrip("/") == url for b in client.ml.list(project=project_id)):
            return "already connected"
        client.ml.create(url=url, project=project_id, title="finepose", is_interactive=True)
    return "connected"
