"""Which way a CAD model faces: its mesh frame, found from the geometry.

finepose's canonical frame is Pascal3D+'s (z up, front at -y; :mod:`geometry.frames`), so
that azimuth 0 looks at the model's front. A mesh file of unknown origin is assumed
axis-aligned, as CAD files are: each of its three axes is the model's up, length or side axis,
one way or the other. The evidence, measured on area-weighted surface samples:

- **side axis**: cars and aeroplanes are mirror-symmetric left to right; the side axis is the
  one whose mirror image lies closest to the surface itself (mean nearest-neighbour distance,
  relative to the model's size);
- **length and up**: of the two others, the longer one is the length (front to back), the
  shorter one is up (both categories are longer than high);
- **up or down**: the top of a car (its roof) and of an aeroplane (its fin) is narrower across
  than its bottom (wheels, wings, engines): up points to the narrower end;
- **front or back**: keypoints when the model has them (``front`` / ``nose`` names against
  ``back`` / ``rear`` / ``tail`` names); else the shape: a cabin, or a fin, sits behind the
  middle, so the front is the end away from the top's centre. Where that offset is under
  :data:`FRONT_MARGIN` of the length, front and back cannot be told apart and
  :attr:`DetectedFrame.front_sure` is False: ask a person rather than guess.

Lengths and heights are read where the surface really ends (the 0.5th and 99.5th percentiles
of the samples), so a thin antenna or stand does not decide them. All of it is pure:
functions of vertex and triangle arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .frames import FrameError, frame_name
from .mesh import Mesh

SAMPLES = 20000
SLICE = 0.15  # the top and bottom slices compared for up/down, as a share of the height
TOP = 0.30  # the top part whose centre says where the back is, as a share of the height
FRONT_MARGIN = 0.02  # the top's centre must lie this share of the length off the middle
PLANE = 0.02  # points this share of the size from an aeroplane's mirror plane: fuselage and fin
FIN = 0.10  # an aeroplane's fin top: the highest points near the plane, this share of the height
WING = 0.5  # a slice this share of the span wide holds wings
AXES = "xyz"
FRONT_WORDS = ("front", "nose")
BACK_WORDS = ("back", "rear", "tail", "trunk", "elevator", "rudder")


@dataclass(frozen=True)
class DetectedFrame:
    """A mesh's frame: ``matrix`` takes mesh-file coordinates to canonical ones (z up, front
    at -y; a proper rotation). ``up``, ``front``, ``side``: the mesh axes (``"+y"``...) that
    point up, to the front and to the model's side. ``front_margin``: how far the evidence for
    the front lies from undecided (share of the length for the shape, of the keypoints'
    spread for keypoints); ``front_sure``: whether it is past :data:`FRONT_MARGIN`;
    ``front_by``: ``"keypoints"`` or ``"shape"``. ``name``: the named frame it equals."""

    matrix: np.ndarray
    up: str
    front: str
    side: str
    front_by: str
    front_margin: float
    front_sure: bool
    symmetry: tuple[float, float, float]  # mirror distance per mesh axis, share of the size
    name: str | None


def surface_samples(mesh: Mesh, count: int = SAMPLES, seed: int = 0) -> np.ndarray:
    """``count`` points drawn uniformly over the mesh's surface (area-weighted), seeded."""
    corners = mesh.vertices[mesh.triangles]
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(area), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    a, b, c = corners[picked, 0], corners[picked, 1], corners[picked, 2]
    return a + r1[:, None] * (b - a) + r2[:, None] * (c - a)


def mirror_distances(points: np.ndarray) -> np.ndarray:
    """Per axis, the mean distance from the points mirrored across the bounding box's middle
    plane normal to that axis to the nearest point, as a share of the largest extent."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    low, high = points.min(axis=0), points.max(axis=0)
    size = float((high - low).max())
    distances = []
    for axis in range(3):
        mirrored = points.copy()
        mirrored[:, axis] = (low[axis] + high[axis]) - mirrored[:, axis]
        distances.append(float(tree.query(mirrored)[0].mean()) / size)
    return np.array(distances)


def _slice_width(points: np.ndarray, up: int, side: int, low: float, high: float) -> float:
    """How wide across (``side``) the points between heights ``low`` and ``high`` are."""
    return _width(points[(points[:, up] >= low) & (points[:, up] <= high), side])


def _front_from_keypoints(keypoints: dict, length: int) -> float | None:
    """The front's direction along the ``length`` axis from keypoint names (+1 or -1 times the
    separation relative to the keypoints' spread), or None without front and back names."""
    names = {name.lower(): np.asarray(xyz, dtype=float) for name, xyz in keypoints.items()}
    front = [xyz[length] for name, xyz in names.items() if any(w in name for w in FRONT_WORDS)]
    back = [xyz[length] for name, xyz in names.items()
            if any(w in name for w in BACK_WORDS) and not any(w in name for w in FRONT_WORDS)]
    if not front or not back:
        return None
    spread = np.ptp([xyz[length] for xyz in names.values()]) or 1.0
    return float((np.mean(front) - np.mean(back)) / spread)


def _axis(index: int, sign: float) -> str:
    return ("+" if sign > 0 else "-") + AXES[index]


def _up_sign(points: np.ndarray, category: str, up: int, side: int, length: int) -> float:
    """+1 when the mesh's ``up`` axis points up, -1 when down (the category's rule)."""
    low, high = _bounds(points[:, up])
    height = high - low
    bottom = _slice_width(points, up, side, low, low + SLICE * height)
    top = _slice_width(points, up, side, high - SLICE * height, high)
    span = _span(points[:, side])
    if category != "aeroplane" or max(top, bottom) < WING * span:
        return 1.0 if top <= bottom else -1.0  # a car's roof, an aeroplane's fin: narrower than below
    # An aeroplane with its wings in the top or bottom slice (high or low wings): the fin. At
    # the tail (the end wider across: the nose is narrow), the points near the mirror plane
    # reach farther up (the fin) than down (the tail cone).
    ends = np.percentile(points[:, length], [10, 90])
    front_end = points[points[:, length] <= ends[0]]
    back_end = points[points[:, length] >= ends[1]]
    tail = back_end if _width(back_end[:, side]) >= _width(front_end[:, side]) else front_end
    near = _near_plane(tail, side, points)[:, up]
    centre = np.median(near)
    return 1.0 if near.max() - centre >= centre - near.min() else -1.0


def _near_plane(part: np.ndarray, side: int, whole: np.ndarray | None = None) -> np.ndarray:
    """The points of ``part`` within :data:`PLANE` of the mirror plane of ``whole`` (an
    aeroplane's fuselage and fin); all of ``part`` when too few are that near (no usable plane)."""
    whole = part if whole is None else whole
    mid = 0.5 * (whole[:, side].min() + whole[:, side].max())
    near = part[np.abs(part[:, side] - mid) <= PLANE * np.ptp(whole, axis=0).max()]
    return near if len(near) >= 20 else part


def _bounds(values: np.ndarray) -> tuple[float, float]:
    """Where the surface really ends along an axis: the 0.5th and 99.5th percentiles of the
    samples (a thin antenna, mirror or stand does not move them)."""
    low, high = np.percentile(values, [0.5, 99.5])
    return float(low), float(high)


def _span(values: np.ndarray) -> float:
    low, high = _bounds(values)
    return high - low


def _width(values: np.ndarray) -> float:
    if len(values) < 20:
        return 0.0
    a, b = np.percentile(values, [2, 98])
    return float(b - a)


def _top_part(points: np.ndarray, category: str, up: int, up_sign: float, side: int) -> np.ndarray:
    """The part whose centre lies behind the middle: a car's top (its cabin), an aeroplane's
    fin top (the highest points near the mirror plane)."""
    heights = points[:, up] * up_sign
    if category == "aeroplane":
        near = _near_plane(points, side)
        near_heights = near[:, up] * up_sign
        return near[near_heights >= near_heights.max() - FIN * np.ptp(heights)]
    low, high = _bounds(heights)
    return points[heights >= high - TOP * (high - low)]


def detect_frame(mesh: Mesh, category: str = "car", keypoints: dict | None = None, seed: int = 0) -> DetectedFrame:
    """The frame of an axis-aligned mesh of ``category`` (``car`` or ``aeroplane``: see the
    module's rules); ``keypoints``: name -> (x, y, z) in mesh-file coordinates, if any."""
    points = surface_samples(mesh, seed=seed)
    symmetry = mirror_distances(points)
    side = int(np.argmin(symmetry))
    others = [a for a in range(3) if a != side]
    extent = np.array([_span(points[:, axis]) for axis in range(3)])
    length, up = (others[0], others[1]) if extent[others[0]] >= extent[others[1]] else (others[1], others[0])
    up_sign = _up_sign(points, category, up, side, length)
    middle = 0.5 * sum(_bounds(points[:, length]))
    margin = _front_from_keypoints(keypoints, length) if keypoints else None
    front_by = "keypoints" if margin is not None else "shape"
    if margin is None:
        top_part = _top_part(points, category, up, up_sign, side)
        margin = -float((top_part[:, length].mean() - middle) / extent[length])  # the front: away from it
    front_sign = 1.0 if margin >= 0 else -1.0
    front_dir = np.eye(3)[length] * front_sign
    up_dir = np.eye(3)[up] * up_sign
    x_dir = np.cross(-front_dir, up_dir)  # canonical x = y x z with y = -front, z = up
    matrix = np.stack([x_dir, -front_dir, up_dir])
    side_sign = float(x_dir[side])
    return DetectedFrame(
        matrix=matrix, up=_axis(up, up_sign), front=_axis(length, front_sign), side=_axis(side, side_sign),
        front_by=front_by, front_margin=abs(margin), front_sure=abs(margin) >= FRONT_MARGIN,
        symmetry=tuple(float(s) for s in symmetry), name=frame_name(matrix),
    )


def axis_rotations() -> list[np.ndarray]:
    """The 24 proper rotations that take coordinate axes onto coordinate axes: every way an
    axis-aligned mesh file may come in."""
    import itertools

    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.linalg.det(m) > 0:
                found.append(m)
    return found


def frame_from_axes(up: str, front: str) -> np.ndarray:
    """The frame whose up and front are the mesh axes ``up`` and ``front`` (``"+y"``, ``"-x"``,
    ...): a person's override of :func:`detect_frame`."""
    def direction(text: str, what: str) -> np.ndarray:
        if not isinstance(text, str) or len(text) != 2 or text[0] not in "+-" or text[1] not in AXES:
            raise FrameError(f"{what} must be a signed mesh axis such as +y or -x, got {text!r}")
        return np.eye(3)[AXES.index(text[1])] * (1.0 if text[0] == "+" else -1.0)

    up_dir, front_dir = direction(up, "up"), direction(front, "front")
    if abs(float(up_dir @ front_dir)) > 0:
        raise FrameError(f"up {up} and front {front} must be different mesh axes")
    return np.stack([np.cross(-front_dir, up_dir), -front_dir, up_dir])


def frame_axes(matrix: np.ndarray) -> tuple[str, str]:
    """(up, front) of an axis-aligned frame as signed mesh axes, e.g. ("+z", "-y")."""
    matrix = np.asarray(matrix, dtype=float)

    def axis(row: np.ndarray) -> str:
        index = int(np.argmax(np.abs(row)))
        return _axis(index, row[index])

    return axis(matrix[2]), axis(-matrix[1])
