"""Pose sets: many images' poses read from one source, and finepose's export format.

A pose set maps an image name to a :class:`PoseRecord`. Three sources are read:

1. **A release pickle** (``*_anno.pkl`` / ``*_anno_v2.pkl`` of StanfordCars3D, CompCars3D,
   FGVC-Aircraft3D): ``{image: {model_id, azimuth, elevation, theta (radians), distance, f,
   u, v}}`` in the release's own convention (``geometry/conventions/seed.py``). A canonical
   :class:`~geometry.pose.Pose` needs the *original* image size, which the pickle lacks, so the
   record keeps the release's numbers (``release``) and makes a pose only when given the size
   (:meth:`PoseRecord.pose_for`). The split is read from the file name (``train_`` / ``test_``).
2. **finepose's export format**, a JSON file::

       {"format": "finepose-poses", "version": 1,
        "items": [{"image": "00001.jpg", "model": "<registry id>", "split": "train"|"test"|null,
                   "pose": <pose JSON in any convention, geometry.pose_io.pose_from_dict>}],
        "split": {"method": "standard"|"random", "seed": int|null, "test_fraction": float|null}}

   :func:`write_pose_set` writes it; reading it back gives every pose exactly (floats are
   written with Python's round-trip ``repr``, the mesh frame as its full matrix).
3. **A folder of pose JSON files** (searched recursively): the image is the file's path
   relative to the folder without ``.json``; the model is the file's ``model``/``model_id``
   field or ``source.model_id`` (as ``finepose import-seed`` writes it); no split.

Images are matched across sets and to mask files by :func:`image_key`, the name without its
extension (``00001.jpg`` and ``00001`` are the same image).
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from geometry.conventions import seed
from geometry.frames import frame_name
from geometry.jsonio import read_json
from geometry.pose import Pose, PoseError
from geometry.pose_io import names_frame, pose_from_dict

from ls_backend.errors import DataError

FORMAT = "finepose-poses"
VERSION = 1
SPLITS = ("train", "test")
SPLIT_METHODS = ("standard", "random")


class PoseSetError(DataError):
    """A pose set that cannot be read or written; the message names the file and the item."""


@dataclass(frozen=True)
class PoseRecord:
    """One image's pose: a canonical ``pose`` (JSON sources) or the release's numbers
    (``release``: radians, ``f`` and ``u``/``v`` in pixels of the 300-px-wide image, ``u``/``v``
    from its centre). Exactly one of the two is set. ``names_frame``: the canonical pose's
    JSON named its mesh frame (release records always fix theirs); see :attr:`frame_fixed`."""

    image: str
    model: str | None
    split: str | None
    pose: Pose | None = None
    release: dict | None = None
    names_frame: bool = False

    def __post_init__(self):
        if (self.pose is None) == (self.release is None):
            raise PoseSetError(f"{self.image}: a record holds either a canonical pose or a release record")

    @property
    def convention(self) -> str:
        """``"seed"`` for release records, ``"finepose"`` for canonical poses."""
        return "seed" if self.release is not None else "finepose"

    @property
    def frame_fixed(self) -> bool:
        """Whether the pose keeps its own mesh frame (else a registry's frame applies):
        release records, and canonical poses whose JSON named one."""
        return self.release is not None or self.names_frame

    def pose_in(self, entry, width: int, height: int) -> Pose:
        """:meth:`pose_for`, in the frame of the model (``entry``, a registry's ``ModelEntry``):
        converted when it fixes another (:attr:`frame_fixed`; see :func:`geometry.frames.express_in_frame`)."""
        return entry.pose_in_frame(self.pose_for(width, height), names_frame=self.frame_fixed)

    def pose_for(self, width: int, height: int) -> Pose:
        """The canonical pose for this image at ``width`` x ``height`` pixels.

        Release records take the size as the original image's (any size with its aspect ratio
        gives the same camera); canonical poses are rescaled to it.
        """
        pose = self.pose if self.pose is not None else seed.to_pose(self.release, width, height)
        return pose.rescaled(width, height)


class PoseSet(dict):
    """``image name -> PoseRecord``, with the source path and the split description
    (``{"method", "seed", "test_fraction"}`` for the export format, else None)."""

    def __init__(self, records, source: str, split: dict | None = None):
        super().__init__(records)
        self.source = source
        self.split = split

    @property
    def convention(self) -> str:
        """The records' convention (``seed`` or ``finepose``): one per source, never mixed."""
        return next(iter(self.values())).convention


def image_key(name: str) -> str:
    """The image name without its extension, in POSIX form: the key that matches images."""
    return str(PurePosixPath(str(name).replace("\\", "/")).with_suffix(""))


def by_image_key(records) -> dict:
    """``records`` (image name -> anything) keyed by :func:`image_key` instead."""
    return {image_key(name): record for name, record in records.items()}


def load_pose_set(path: str | Path) -> PoseSet:
    """Read a pose set from a release pickle, an export-format JSON file or a folder of pose JSON."""
    path = Path(path)
    if path.is_dir():
        records = _read_folder(path)
        split = None
    elif not path.is_file():
        raise PoseSetError(f"pose set not found: {path}")
    elif path.suffix == ".pkl":
        records, split = _read_pickle(path), None
    elif path.suffix == ".json":
        records, split = _read_export(path)
    else:
        raise PoseSetError(f"{path}: a pose set is a .pkl release file, a .json export or a folder of .json poses")
    if not records:
        raise PoseSetError(f"{path}: the pose set is empty")
    _check_keys(path, records)
    return PoseSet(records, source=str(path), split=split)


def write_pose_set(path: str | Path, items, split_info: dict | None) -> None:
    """Write ``items`` (:class:`PoseRecord` with canonical poses) in the export format.

    ``split_info``: ``{"method": "standard"|"random", "seed": int|None, "test_fraction":
    float|None}`` or None.
    """
    out_items = []
    for record in items:
        if record.pose is None:
            raise PoseSetError(
                f"{record.image}: only canonical poses can be exported; a release record needs the "
                "original image size (geometry.conventions.seed.to_pose)"
            )
        _check_split(record.split, record.image)
        out_items.append(
            {"image": record.image, "model": record.model, "split": record.split, "pose": _pose_json(record.pose)}
        )
    data = {
        "format": FORMAT,
        "version": VERSION,
        "items": out_items,
        "split": None if split_info is None else _split_info(split_info, str(path)),
    }
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def _pose_json(pose: Pose) -> dict:
    """Canonical pose JSON keeping the mesh frame exactly (named when it is a known frame)."""
    data = pose.to_dict()
    data.pop("mesh_frame", None)
    if not np.array_equal(pose.mesh_frame, np.eye(3)):
        data["mesh_frame"] = {"name": frame_name(pose.mesh_frame), "matrix": pose.mesh_frame.tolist()}
    return data


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise PoseSetError(f"{path}: not a release pickle ({exc})") from None
    if not isinstance(data, dict):
        raise PoseSetError(f"{path}: a release pickle holds a dict image -> record, got {type(data).__name__}")
    split = next((s for s in SPLITS if path.name.startswith(s + "_")), None)
    records = {}
    for image, record in data.items():
        if not isinstance(record, dict):
            raise PoseSetError(f"{path}: record of {image!r} is not a dict")
        missing = [k for k in seed.FIELDS if k not in record]
        if missing:
            raise PoseSetError(f"{path}: record of {image!r} is missing {', '.join(missing)}")
        try:
            values = {k: float(record[k]) for k in seed.FIELDS}
        except (TypeError, ValueError):
            raise PoseSetError(f"{path}: record of {image!r} has a non-numeric field") from None
        if not all(math.isfinite(x) for x in values.values()):
            raise PoseSetError(f"{path}: record of {image!r} has a non-finite number")
        model = record.get("model_id")
        records[str(image)] = PoseRecord(str(image), None if model is None else str(model), split, release=values)
    return records


def _read_export(path: Path) -> tuple[dict, dict | None]:
    data = read_json(path, "pose set", PoseSetError)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PoseSetError(f'{path}: not a finepose pose set (expected "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise PoseSetError(f"{path}: unsupported pose set version {data.get('version')!r} (this reads {VERSION})")
    items = data.get("items")
    if not isinstance(items, list):
        raise PoseSetError(f'{path}: "items" must be a list')
    records = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("image"), str):
            raise PoseSetError(f'{path}: item {index} needs an "image" name')
        image = item["image"]
        if image in records:
            raise PoseSetError(f"{path}: image {image!r} appears twice")
        _check_split(item.get("split"), f"{path}: {image}")
        try:
            pose = pose_from_dict(item.get("pose"))
        except PoseError as exc:
            raise PoseSetError(f"{path}: pose of {image!r}: {exc}") from None
        model = item.get("model")
        records[image] = PoseRecord(
            image, None if model is None else str(model), item.get("split"), pose=pose, names_frame=names_frame(item["pose"])
        )
    split = data.get("split")
    return records, None if split is None else _split_info(split, str(path))


def _read_folder(path: Path) -> dict:
    records = {}
    for file in sorted(path.rglob("*.json")):
        image = file.relative_to(path).with_suffix("").as_posix()
        data = read_json(file, "pose file", PoseSetError)
        try:
            pose = pose_from_dict(data)
        except PoseError as exc:
            raise PoseSetError(f"{file}: {exc}") from None
        source = data.get("source") if isinstance(data.get("source"), dict) else {}
        model = data.get("model", data.get("model_id", source.get("model_id")))
        records[image] = PoseRecord(image, None if model is None else str(model), None, pose=pose, names_frame=names_frame(data))
    return records


def _check_split(split, where: str) -> None:
    if split is not None and split not in SPLITS:
        raise PoseSetError(f"{where}: split must be one of {', '.join(SPLITS)} or null, got {split!r}")


def _split_info(info, where: str) -> dict:
    if not isinstance(info, dict) or info.get("method") not in SPLIT_METHODS:
        raise PoseSetError(f"{where}: split info needs \"method\" in {', '.join(SPLIT_METHODS)}, got {info!r}")
    seed_value, fraction = info.get("seed"), info.get("test_fraction")
    if seed_value is not None and not isinstance(seed_value, int):
        raise PoseSetError(f"{where}: split seed must be an integer or null, got {seed_value!r}")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction < 1):
        raise PoseSetError(f"{where}: split test_fraction must be in (0, 1) or null, got {fraction!r}")
    return {"method": info["method"], "seed": seed_value, "test_fraction": fraction}


def _check_keys(path: Path, records: dict) -> None:
    """Refuse sets where two images share a key (``a.jpg`` and ``a.png``)."""
    seen = {}
    for image in records:
        key = image_key(image)
        if key in seen:
            raise PoseSetError(f"{path}: images {seen[key]!r} and {image!r} have the same name without extension")
        seen[key] = image
