"""The CAD model registry: which mesh a task's ``data.model`` means.

A registry is a JSON file (``FINEPOSE_REGISTRY``)::

    {"<model id or category>": {"mesh": "<path>", "frame": "<frame name>",
                                "category": "car" | "aeroplane", "keypoints": "<path>"}}

``mesh`` and ``keypoints`` are relative to the registry file's folder unless absolute.
``frame`` (a name of :data:`geometry.frames.FRAMES`, default ``pascal3d``, or a 3x3
rotation from mesh-file to canonical coordinates, as ``registry add`` writes) is the model's
frame: every pose of the model is expressed in it, whatever its source (task data, an
annotation's numbers, the automatic pose, a keypoint fit, a pose set), by the one rule
:func:`geometry.frames.pose_in_model_frame`: a pose naming another frame is converted (register
the release's ShapeNet meshes as ``shapenet_core`` and its poses read as the model's own
numbers; see :func:`geometry.frames.express_in_frame`). ``category`` is required
(it chooses the segmentation classes); an entry without a usable one is refused when the
registry loads, naming the entry. ``keypoints`` defaults to ``<mesh stem>_keypoints.json``
beside the mesh when that exists. Task data only ever names an id: never a path. Meshes and their ray-casting scenes are built once per
process and mesh file, on first use, and kept. :meth:`Registry.single` answers every id with
one mesh.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from geometry.frames import FRAMES, frame_matrix, pose_in_model_frame
from geometry.jsonio import read_json
from geometry.keypoints import KeypointError, keypoints_path, load_keypoints
from geometry.render import SilhouetteRenderer

from geometry.pose import Pose
from ls_backend.errors import RegistryError, UnknownModelError
from ls_backend.registry.renderers import RendererCache

logger = logging.getLogger(__name__)

CATEGORIES = ("car", "aeroplane")
DEFAULT_FRAME = "pascal3d"


@dataclass(frozen=True)
class ModelEntry:
    model_id: str
    mesh: Path
    frame: str | tuple | None  # a name or a rotation's rows; None only for Registry.single without a frame
    category: str | None  # None only for Registry.single (no segmentation there)
    keypoints: Path | None

    @property
    def frame_matrix(self) -> np.ndarray:
        """The model's frame as a matrix (``pascal3d`` when none is fixed)."""
        return frame_matrix(self.frame or DEFAULT_FRAME)

    def pose_in_frame(self, pose: Pose, *, names_frame: bool) -> Pose:
        """``pose`` in this model's frame (:func:`geometry.frames.pose_in_model_frame`)."""
        return pose_in_model_frame(pose, self.frame, names_frame=names_frame)


class Registry:
    """Model id -> :class:`ModelEntry`, with a per-process cache of renderers."""

    def __init__(self, entries: dict[str, ModelEntry], max_mesh_bytes: int = 200 << 20, source: str = "",
                 default: ModelEntry | None = None):
        self.entries = entries
        self.max_mesh_bytes = max_mesh_bytes
        self.source = source
        self.default = default
        self._renderers = RendererCache(max_mesh_bytes=max_mesh_bytes)

    @classmethod
    def load(cls, path: str | Path, max_mesh_bytes: int = 200 << 20) -> "Registry":
        path = Path(path)
        data = read_json(path, "model registry", RegistryError, hint=" (set FINEPOSE_REGISTRY)")
        if not isinstance(data, dict):
            raise RegistryError(f"model registry {path} must be a JSON object of model id -> entry")
        entries = {str(key): _entry(str(key), value, path.parent) for key, value in data.items()}
        return cls(entries, max_mesh_bytes=max_mesh_bytes, source=str(path))

    @classmethod
    def single(cls, mesh: str | Path, frame: str | None = None, max_mesh_bytes: int = 200 << 20) -> "Registry":
        """One mesh for every model id."""
        default = ModelEntry(model_id="*", mesh=_resolve(Path.cwd(), str(mesh)), frame=frame, category=None, keypoints=None)
        return cls({}, max_mesh_bytes=max_mesh_bytes, source=str(mesh), default=default)

    def entry(self, model_id) -> ModelEntry:
        if self.default is not None:
            return self.default
        if not isinstance(model_id, str) or not model_id:
            raise UnknownModelError(f"task data 'model' must be a non-empty string naming a registered model, got {model_id!r}")
        try:
            return self.entries[model_id]
        except KeyError:  # the answer names neither the registry's path nor its ids (the log may)
            logger.info("unknown model %r: not in the registry %s", model_id, self.source)
            raise UnknownModelError(f"unknown model {model_id!r}: not in the registry (FINEPOSE_REGISTRY holds "
                                    f"{len(self.entries)} models)") from None

    def renderer(self, model_id: str) -> SilhouetteRenderer:
        """The renderer of a model's mesh, built on first use and then shared (per mesh file)."""
        return self._renderers.get(self.entry(model_id).mesh)

    def keypoints(self, model_id: str) -> dict[str, np.ndarray]:
        """The model's named 3D keypoints in mesh-file coordinates ({} when it has none)."""
        entry = self.entry(model_id)
        if entry.keypoints is None:
            return {}
        try:
            return load_keypoints(entry.keypoints)
        except KeypointError as exc:
            raise RegistryError(f"keypoints of model {model_id!r}: {exc}") from None

    def fingerprint(self, model_id: str) -> str:
        """A short digest of what a model's predictions depend on: its mesh file's content,
        its frame and its category (not where the file lies: a fresh checkout or another host
        changes nothing). ``finepose prelabel`` re-predicts the tasks of a model whose
        fingerprint changed (a new mesh or frame); other models are untouched."""
        entry = self.entry(model_id)
        text = json.dumps([_file_digest(Path(entry.mesh)), entry.frame, entry.category])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _file_digest(path: Path) -> str | None:
    """The SHA-256 of a file's content (None when it cannot be read), cached by path, size and
    modification time."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _content_digest(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _content_digest(path: str, size: int, mtime_ns: int) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _entry(model_id: str, value, root: Path) -> ModelEntry:
    if not isinstance(value, dict) or not isinstance(value.get("mesh"), str):
        raise RegistryError(f"registry entry {model_id!r} must be an object with a 'mesh' path")
    frame = _frame(model_id, value.get("frame", DEFAULT_FRAME))
    category = value.get("category")
    if category not in CATEGORIES:
        given = "has no 'category'" if category is None else f"has category {category!r}"
        raise RegistryError(
            f"registry entry {model_id!r} {given}: give one of {', '.join(CATEGORIES)} "
            "(it picks the segmentation classes)"
        )
    mesh = _resolve(root, value["mesh"])
    keypoints = value.get("keypoints")
    if keypoints is not None:
        keypoints = _resolve(root, keypoints)
    else:
        beside = keypoints_path(mesh)
        keypoints = beside if beside.is_file() else None
    return ModelEntry(model_id=model_id, mesh=mesh, frame=frame, category=category, keypoints=keypoints)


def _frame(model_id: str, frame):
    """A frame name of :data:`geometry.frames.FRAMES`, or a 3x3 rotation (``registry add``
    writes one where the detected frame has no name) as a tuple of rows."""
    if isinstance(frame, str):
        if frame not in FRAMES:
            raise RegistryError(f"registry entry {model_id!r}: unknown frame {frame!r} (known: {', '.join(FRAMES)}, "
                                "or a 3x3 rotation)")
        return frame
    try:
        matrix = np.asarray(frame, dtype=float)
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape != (3, 3) or not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-6) \
            or np.linalg.det(matrix) < 0:
        raise RegistryError(f"registry entry {model_id!r}: frame {frame!r} is neither a frame name "
                            f"({', '.join(FRAMES)}) nor a 3x3 rotation")
    return tuple(tuple(float(x) for x in row) for row in matrix)


def _resolve(root: Path, path: str) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else (root / path)

