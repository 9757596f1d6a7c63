"""``finepose registry add``: one CAD model into a registry, its frame found or given, with a
preview picture that shows at a glance whether the frame is right.

The frame (:mod:`geometry.frame_detection`) makes finepose's numbers mean what their labels
say for this model: azimuth 0 looks at its front, elevation 90 looks down on its top. The
preview draws the model from the front (azimuth 0), at azimuth 45, from the side (azimuth 90)
and from the top (elevation 90), labelled in those terms: a car seen from behind under
"front" means the frame is wrong (give ``--up``/``--front``). The registry stores the frame's
name when it is a known one, else its matrix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from geometry.frame_detection import detect_frame, frame_axes, frame_from_axes
from geometry.frames import frame_matrix, frame_name
from geometry.keypoints import KeypointError, keypoints_path, load_keypoints
from geometry.mesh import load_mesh
from geometry.pose import Pose

from ls_backend.errors import RegistryError
from ls_backend.registry.schema import CATEGORIES, Registry

#: The preview's views: (title, azimuth, elevation) in degrees.
VIEWS = (("front: azimuth 0", 0.0, 8.0), ("azimuth 45", 45.0, 20.0), ("side: azimuth 90", 90.0, 8.0),
         ("top: elevation 90", 0.0, 89.9))
PREVIEW_SIZE = (320, 240)


def add_model(registry_path: Path, mesh_path: Path, model_id: str, category: str, *, frame: str = "auto",
              up: str | None = None, front: str | None = None, keypoints: Path | None = None,
              replace: bool = False) -> dict:
    """Add ``mesh_path`` as ``model_id`` to the registry at ``registry_path`` (made when
    missing) and draw its preview beside the registry (``previews/<id>.png``). ``frame``:
    ``auto`` (detect; ``up`` and ``front`` override it) or a frame name. Returns what was
    written and the evidence for the frame."""
    if category not in CATEGORIES:
        raise RegistryError(f"category {category!r}: give one of {', '.join(CATEGORIES)}")
    registry_path = Path(registry_path)
    entries = _read_entries(registry_path)
    if model_id in entries and not replace:
        raise RegistryError(f"{registry_path} already has a model {model_id!r}; give --replace to replace it")
    mesh = load_mesh(mesh_path)
    points = _keypoints(mesh_path, keypoints)
    if frame != "auto":
        if up or front:
            raise RegistryError("give either --frame NAME or --up/--front, not both")
        matrix, found = frame_matrix(frame), {"by": "name"}
    elif up or front:
        if not (up and front):
            raise RegistryError("--up and --front go together (e.g. --up=+y --front=-x)")
        matrix, found = frame_from_axes(up, front), {"by": "you"}
    else:
        detected = detect_frame(mesh, category, points)
        matrix = detected.matrix
        found = {"by": detected.front_by, "front_margin": round(detected.front_margin, 3),
                 "mirror_distance": [round(s, 4) for s in detected.symmetry]}
        if not detected.front_sure:
            preview = _preview(registry_path, model_id, mesh, matrix, mesh_path)
            raise RegistryError(
                f"{mesh_path.name}: up is {detected.up}, the length lies along {detected.front[1]}, but its front "
                f"and back cannot be told apart (margin {detected.front_margin:.3f}); look at {preview} and run "
                f"again with --up={detected.up} and --front=+{detected.front[1]} or --front=-{detected.front[1]}")
    name = frame_name(matrix)
    up_axis, front_axis = frame_axes(matrix)
    entry = {"mesh": _relative(mesh_path, registry_path.parent), "category": category,
             "frame": name if name is not None else np.round(matrix, 12).tolist()}
    if keypoints is not None:
        entry["keypoints"] = _relative(keypoints, registry_path.parent)
    preview = _preview(registry_path, model_id, mesh, matrix, mesh_path)
    entries[model_id] = entry
    _write_entries(registry_path, entries, check=True)
    return {"registry": str(registry_path), "model": model_id, "frame": entry["frame"], "up": up_axis,
            "front": front_axis, "found_by": found, "preview": str(preview)}


def _keypoints(mesh_path: Path, given: Path | None) -> dict | None:
    path = Path(given) if given is not None else keypoints_path(mesh_path)
    if not path.is_file():
        if given is not None:
            raise RegistryError(f"keypoints file not found: {given}")
        return None
    try:
        return {name: np.asarray(xyz, float) for name, xyz in load_keypoints(path).items()}
    except KeypointError as exc:
        raise RegistryError(f"keypoints {path}: {exc}") from None


def _read_entries(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"registry {path} is unreadable: {exc}") from None
    if not isinstance(entries, dict):
        raise RegistryError(f"registry {path} is not a JSON object of model id -> entry")
    return entries


def _write_entries(path: Path, entries: dict, check: bool = False) -> None:
    """Write the registry atomically; ``check``: only when every entry loads (else the file
    stays as it was and the error names the entry)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(entries, indent=1) + "\n")
    try:
        if check:
            Registry.load(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the registry's folder where it lies below it, else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def view_pose(mesh, matrix: np.ndarray, azimuth: float, elevation: float, size=PREVIEW_SIZE) -> Pose:
    """A camera at (``azimuth``, ``elevation``) framing the whole model in ``size`` px."""
    width, height = size
    focal = 1.5 * width
    distance = mesh.radius * focal / (0.46 * min(width, height))
    return Pose(azimuth=azimuth, elevation=elevation, theta=0.0, distance=distance, focal=focal, u=(width - 1) / 2,
                v=(height - 1) / 2, width=width, height=height, mesh_frame=np.asarray(matrix, float))


def _preview(registry_path: Path, model_id: str, mesh, matrix: np.ndarray, mesh_path: Path) -> Path:
    """The four views, labelled, in ``<registry folder>/previews/<model id>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pictures = _render_views(mesh, matrix)
    up, front = frame_axes(matrix)
    fig, axes = plt.subplots(1, len(VIEWS), figsize=(3.2 * len(VIEWS), 3.0))
    for ax, (title, _, _), picture in zip(axes, VIEWS, pictures):
        ax.imshow(picture)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{model_id} ({mesh_path.name}): mesh up {up}, front {front}. Is the front view the model's front?",
                 fontsize=10)
    fig.tight_layout()
    out = Path(registry_path).parent / "previews" / f"{model_id}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _render_views(mesh, matrix: np.ndarray) -> list[np.ndarray]:
    """Each view lit from the camera (ray casting: no GPU needed), grey on white."""
    from geometry.render import SilhouetteRenderer

    renderer = SilhouetteRenderer(mesh)
    pictures = []
    for _, azimuth, elevation in VIEWS:
        light = renderer.headlit(view_pose(mesh, matrix, azimuth, elevation))
        grey = np.where(np.isnan(light), 255, 60 + 170 * np.nan_to_num(light)).astype(np.uint8)
        pictures.append(np.repeat(grey[..., None], 3, axis=2))
    return pictures
