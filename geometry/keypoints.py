"""Named CAD keypoints and the "smart keypoints" pose fit.

An annotator clicks a few named keypoints of the CAD model (wheels, lights, nose, wing tips,
...) on the photo; :func:`fit_pose_to_keypoints` finds the 7 pose parameters of finepose's
canonical camera (:mod:`geometry.pose`) that image the model's keypoints onto the clicks.

Conventions:

- Model keypoints are in the mesh file's coordinates (model units), like the vertices; the
  pose's ``mesh_frame`` takes them to the canonical frame exactly as it does the vertices
  (:func:`geometry.camera.camera_points`).
- Image points are pixels ``(x, y)``: x right, y down, the centre of the top-left pixel at
  ``(0, 0)`` (the convention of ``u``, ``v``).
- Keypoint files are Pascal3D+'s JSON: ``{"left_front_wheel": [x, y, z], ...}``, stored
  beside the mesh as ``<mesh stem>_keypoints.json``.

The fit (see :func:`fit_pose_to_keypoints`): least squares on the reprojection error in
pixels over azimuth, elevation, theta (degrees), log distance, log focal, u, v (logs keep
distance and focal positive), from several starts, with a weak log-normal prior on the focal.
"""

from __future__ import annotations

from .errors import GeometryError

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from .camera import project, rotation
from .init_pose import FOCAL_PER_WIDTH, far_apart
from .pose import Pose, wrap_degrees

MIN_POINTS = 4
# Prior on the focal: a residual FOCAL_PRIOR_PX * ln(focal / prior focal), in pixels beside the
# reprojection residuals, i.e. a log-normal prior with sigma(ln focal) = click sigma (px) /
# FOCAL_PRIOR_PX. The release's refined annotations have focal ~ 1.2 x width with sd(ln focal)
# ~0.5 (cars) to ~1.0 (aircraft, long tail towards far cameras); with clicks good to 1-2 px,
# 2 px per unit of ln focal matches that. Weaker priors let noisy 4-6 point fits wander to
# focals off by factors of 2-4 (and azimuth with them); stronger ones bias clean fits.
FOCAL_PRIOR_PX = 2.0
START_AZIMUTHS = tuple(range(0, 360, 15))
START_ELEVATIONS = (-20.0, 0.0, 20.0, 40.0, 60.0)
LOCAL_STARTS = 6  # least-squares runs from the best distinct weak-perspective starts
MAX_EVALUATIONS = 400  # per run, Jacobian columns included (a typical run takes 10-50)
AMBIGUOUS_PX = 1.0  # a far-apart solution within this rms of the best makes the fit ambiguous
# A fit is poor when its rms exceeds POOR_PX (click noise) + POOR_FRACTION x the clicks' spread
# (the CAD model is not the photographed object's exact shape).
POOR_PX = 2.0
POOR_FRACTION = 0.03
MIN_DEPTH = 1e-3  # points nearer than this fraction of the distance count as at this depth


class KeypointError(GeometryError):
    """A keypoint file that is missing, unreadable or malformed."""


# -- keypoint files --------------------------------------------------------------------------


def load_keypoints(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a Pascal3D+ keypoint JSON file: name -> (3,) float array, mesh-file coordinates."""
    path = Path(path)
    if not path.is_file():
        raise KeypointError(f"keypoint file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeypointError(f"{path}: cannot read keypoints as JSON: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise KeypointError(f"{path}: keypoints must be a non-empty JSON object of name -> [x, y, z]")
    return {str(name): _point3(path, name, value) for name, value in data.items()}


def _point3(path: Path, name: str, value) -> np.ndarray:
    """``value`` as a finite (3,) array, or a :class:`KeypointError` naming the keypoint."""
    try:
        point = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        point = None
    if point is None or point.shape != (3,) or not np.all(np.isfinite(point)):
        raise KeypointError(f"{path}: keypoint {name!r} must be 3 finite numbers [x, y, z], got {value!r}")
    return point


def keypoints_path(mesh_path: str | os.PathLike) -> Path:
    """Where the keypoints of a mesh live: ``<stem>_keypoints.json`` in the mesh's folder."""
    mesh_path = Path(mesh_path)
    return mesh_path.with_name(f"{mesh_path.stem}_keypoints.json")


def keypoints_for_mesh(mesh_path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The keypoints stored beside ``mesh_path``, or None when it has no keypoint file."""
    path = keypoints_path(mesh_path)
    return load_keypoints(path) if path.is_file() else None


def project_keypoints(pose: Pose, keypoints: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pixel position (2,) of each named mesh-file keypoint under ``pose``."""
    names = list(keypoints)
    if not names:
        return {}
    xy = project(pose, np.array([keypoints[n] for n in names], dtype=float))
    return dict(zip(names, xy))


# -- the fit ---------------------------------------------------------------------------------


@dataclass
class KeypointFit:
    """The pose fitted to clicked keypoints.

    ``rms``: root mean square over the points of the distance (px) between each click and its
    keypoint's reprojection; ``errors``: that distance per keypoint name. ``alternative``: the
    best solution more than ``FAR_APART_DEG`` away in azimuth (front/back, Necker-like
    reversals), with its rms; ``ambiguous`` when it is within ``AMBIGUOUS_PX`` of the best.
    ``poor``: rms above ``POOR_PX`` + ``POOR_FRACTION`` x the clicks' spread (RMS distance from
    their centroid), or a keypoint behind the camera.
    ``ignored``: clicked names the model has no keypoint for.
    """

    pose: Pose
    rms: float
    errors: dict
    num_points: int
    ambiguous: bool
    poor: bool
    alternative: Pose | None
    alternative_rms: float | None
    ignored: list
    seconds: float

    def to_dict(self) -> dict:
        return {
            "pose": self.pose.to_dict(),
            "rms": self.rms,
            "errors": {name: float(e) for name, e in self.errors.items()},
            "num_points": self.num_points,
            "ambiguous": self.ambiguous,
            "poor": self.poor,
            "alternative": None if self.alternative is None else self.alternative.to_dict(),
            "alternative_rms": self.alternative_rms,
            "ignored": list(self.ignored),
            "seconds": self.seconds,
        }


def fit_pose_to_keypoints(
    model_points: dict,
    image_points: dict,
    width: int,
    height: int,
    *,
    mesh_frame: np.ndarray | None = None,
    initial: Pose | None = None,
    focal_prior: float | None = None,
    focal_weight: float = FOCAL_PRIOR_PX,
) -> KeypointFit:
    """Fit azimuth, elevation, theta, distance, focal, u, v to named 2D-3D correspondences.

    ``model_points``: name -> (3,) mesh-file coordinates; ``image_points``: name -> (2,) pixels
    (see the module's conventions); ``width`` x ``height``: the image size the pose refers to.
    ``mesh_frame`` (default: ``initial``'s, else identity) maps model points to the canonical
    frame. ``initial``, when given (e.g. the pose on screen), is one more start.

    Needs 4 or more clicked names the model knows. The camera looks at the model origin, so
    with the unknown focal there are 7 unknowns for 2 equations per point. Distance and focal
    are nearly degenerate for distant objects (only focal / distance matters), and 4 points
    leave one equation to spare: a weak prior on the focal (``FOCAL_PRIOR_PX``, centred on
    ``FOCAL_PER_WIDTH * width`` as :mod:`geometry.init_pose` assumes) picks the solution
    there; with 6+ points and visible perspective the clicks dominate it. ``focal_prior``:
    the prior's centre in pixels (default ``FOCAL_PER_WIDTH * width``); ``focal_weight``: its
    weight in pixels per unit of ln focal (0: no prior, for 6+ points with clear perspective).
    """
    start = time.perf_counter()
    names, ignored = _matched_names(model_points, image_points)
    template = Pose(0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, width, height, _frame(mesh_frame, initial))
    model = _array(model_points, names, 3, "model")
    clicks = _array(image_points, names, 2, "image")
    canonical = model @ template.mesh_frame.T  # as geometry.camera.camera_points maps vertices
    problem = _Problem(canonical, clicks, _log_focal_prior(width, focal_prior, focal_weight), focal_weight)
    starts = _weak_perspective_starts(canonical, clicks, problem.log_focal_prior)
    if initial is not None:
        starts.insert(0, _vector_to_x(initial.rescaled(width, height).vector()))
    solutions = sorted((problem.solve(x0) for x0 in starts), key=lambda s: s[1])
    best_x, best_rms = solutions[0]
    rival = _far_apart_rival(solutions)
    pose = template.with_vector(_x_to_vector(best_x))
    errors = np.linalg.norm(project(pose, model) - clicks, axis=1)
    return KeypointFit(
        pose=pose,
        rms=best_rms,
        errors=dict(zip(names, errors)),
        num_points=len(names),
        ambiguous=rival is not None and rival[1] - best_rms < AMBIGUOUS_PX,
        poor=best_rms > POOR_PX + POOR_FRACTION * _spread(clicks) or problem.behind_camera(best_x),
        alternative=None if rival is None else template.with_vector(_x_to_vector(rival[0])),
        alternative_rms=None if rival is None else rival[1],
        ignored=ignored,
        seconds=time.perf_counter() - start,
    )


def _matched_names(model_points: dict, image_points: dict) -> tuple[list, list]:
    """Clicked names the model knows (sorted) and those it does not; ValueError below 4."""
    known = sorted(n for n in image_points if n in model_points)
    unknown = sorted(n for n in image_points if n not in model_points)
    if len(known) < MIN_POINTS:
        detail = f"; names unknown to the model: {', '.join(unknown)}" if unknown else ""
        raise ValueError(
            f"a keypoint pose fit needs at least {MIN_POINTS} clicked keypoints the model knows, "
            f"got {len(image_points)} clicked, {len(known)} known{detail}"
        )
    return known, unknown


def _array(points: dict, names: list, dim: int, kind: str) -> np.ndarray:
    """The named points as an (N, dim) array; ValueError naming any malformed or non-finite."""
    rows = []
    for name in names:
        try:
            row = np.asarray(points[name], dtype=float)
        except (TypeError, ValueError):
            row = None
        if row is None or row.shape != (dim,) or not np.all(np.isfinite(row)):
            raise ValueError(f"{kind} point {name!r} must be {dim} finite numbers, got {points[name]!r}")
        rows.append(row)
    return np.array(rows)


def _log_focal_prior(width: int, focal_prior: float | None, focal_weight: float) -> float:
    """ln of the prior's focal (px); ValueError for a non-positive focal or negative weight."""
    prior = FOCAL_PER_WIDTH * width if focal_prior is None else float(focal_prior)
    if not (math.isfinite(prior) and prior > 0 and math.isfinite(focal_weight) and focal_weight >= 0):
        raise ValueError(f"focal prior must be > 0 px with a weight >= 0, got {prior} px, weight {focal_weight}")
    return math.log(prior)


def _frame(mesh_frame, initial: Pose | None) -> np.ndarray:
    """The mesh frame to fit in: the one given, else ``initial``'s, else identity."""
    if mesh_frame is not None:
        return np.asarray(mesh_frame, dtype=float)
    return np.eye(3) if initial is None else initial.mesh_frame


def _spread(clicks: np.ndarray) -> float:
    """RMS distance (px) of the clicks from their centroid."""
    return float(np.sqrt(((clicks - clicks.mean(axis=0)) ** 2).sum(axis=1).mean()))


# The optimiser's x: azimuth, elevation, theta (degrees), ln distance, ln focal, u, v.
def _x_to_vector(x: np.ndarray) -> np.ndarray:
    """Optimiser x -> the 7 pose parameters."""
    a, e, t, log_d, log_f, u, v = x
    return np.array([a, e, t, math.exp(log_d), math.exp(log_f), u, v])


def _vector_to_x(vector: np.ndarray) -> np.ndarray:
    """The 7 pose parameters -> optimiser x."""
    a, e, t, d, f, u, v = vector
    return np.array([a, e, t, math.log(d), math.log(f), u, v])


def _normalised(x: np.ndarray) -> np.ndarray:
    """The same camera with elevation in [-90, 90] and azimuth, theta in [-180, 180) degrees.

    Elevation ``e`` past the pole is the camera at elevation ``+-180 - e``, azimuth ``a + 180``,
    upside down (theta ``+ 180``).
    """
    x = x.copy()
    x[1] = wrap_degrees(x[1])
    if abs(x[1]) > 90.0:
        x[1] = math.copysign(180.0, x[1]) - x[1]
        x[0] += 180.0
        x[2] += 180.0
    x[0], x[2] = wrap_degrees(x[0]), wrap_degrees(x[2])
    return x


class _Problem:
    """Reprojection residuals (px) of canonical model points against clicks, plus the prior."""

    def __init__(self, model: np.ndarray, clicks: np.ndarray, log_focal_prior: float, focal_weight: float):
        self.model = model
        self.clicks = clicks
        self.log_focal_prior = log_focal_prior
        self.focal_weight = focal_weight

    def camera_points(self, x: np.ndarray) -> np.ndarray:
        """Model points in camera coordinates (OpenCV axes) at optimiser state ``x``."""
        return self.model @ rotation(x[0], x[1], x[2]).T + np.array([0.0, 0.0, math.exp(x[3])])

    def residuals(self, x: np.ndarray) -> np.ndarray:
        cam = self.camera_points(x)
        depth = np.maximum(cam[:, 2:3], MIN_DEPTH * math.exp(x[3]))
        xy = cam[:, :2] / depth * math.exp(x[4]) + x[5:7]
        prior = self.focal_weight * (x[4] - self.log_focal_prior)
        return np.append((xy - self.clicks).ravel(), prior)

    def rms(self, x: np.ndarray) -> float:
        """RMS over the points of the reprojection distance (px), without the prior."""
        return float(np.sqrt((self.residuals(x)[:-1] ** 2).sum() / len(self.clicks)))

    def behind_camera(self, x: np.ndarray) -> bool:
        return bool(np.any(self.camera_points(x)[:, 2] <= MIN_DEPTH * math.exp(x[3])))

    def solve(self, x0: np.ndarray) -> tuple[np.ndarray, float]:
        """Levenberg-Marquardt from ``x0``: (x, rms)."""
        x = _normalised(least_squares(self.residuals, x0, method="lm", x_scale="jac", max_nfev=MAX_EVALUATIONS).x)
        return x, self.rms(x)


def _weak_perspective_starts(model: np.ndarray, clicks: np.ndarray, log_focal: float) -> list:
    """Starts from an azimuth x elevation grid: for each view the image similarity (scale =
    focal / distance, theta, u, v) best mapping the orthographic view onto the clicks, in
    closed form; the ``LOCAL_STARTS`` best distinct views, as optimiser states."""
    target = clicks[:, 0] + 1j * clicks[:, 1]
    target_c = target - target.mean()
    scored = []
    for elevation in START_ELEVATIONS:
        for azimuth in START_AZIMUTHS:
            cam = model @ rotation(azimuth, elevation, 0.0).T
            z = cam[:, 0] + 1j * cam[:, 1]
            zc = z - z.mean()
            c = np.vdot(zc, target_c) / max(np.vdot(zc, zc).real, 1e-12)  # target ~ c z + b
            cost = float(np.abs(target_c - c * zc).sum())
            scored.append((cost, azimuth, elevation, c, target.mean() - c * z.mean()))
    scored.sort(key=lambda s: s[0])
    starts, views = [], []
    for _, azimuth, elevation, c, b in scored:
        if any(abs(wrap_degrees(azimuth - a)) < 30.0 and abs(elevation - e) < 30.0 for a, e in views):
            continue
        views.append((azimuth, elevation))
        # rot_z(-theta) turns camera (x, y) by -theta: c = scale * exp(-i theta).
        theta = -math.degrees(np.angle(c))
        log_d = log_focal - math.log(max(abs(c), 1e-12))
        starts.append(np.array([azimuth, elevation, theta, log_d, log_focal, b.real, b.imag]))
        if len(starts) == LOCAL_STARTS:
            break
    return starts


def _far_apart_rival(solutions: list) -> tuple[np.ndarray, float] | None:
    """The best solution more than ``FAR_APART_DEG`` in azimuth from the best, or None."""
    best_azimuth = solutions[0][0][0]
    for x, rms in solutions[1:]:
        if far_apart(x[0], best_azimuth):
            return x, rms
    return None
