"""Shaded (lit, grey) renders of a mesh at a finepose pose with Open3D's ``OffscreenRenderer``.

The binary silhouettes that refinement optimises come from ray casting
(:mod:`geometry.render`); this module only makes overlay pictures nicer to look at: the model
drawn lit and shaded over the photo, plus the exact silhouette outline.

Where it works
--------------
Open3D 0.20's ``OffscreenRenderer`` renders with Filament on **Vulkan**; on a machine with no
GPU it needs a software Vulkan driver: Debian/Ubuntu ``libvulkan1`` (the loader) and
``mesa-vulkan-drivers`` (lavapipe/llvmpipe). No X display, EGL or OSMesa is involved: with no
display Open3D logs "GLFW init failed ... Falling back to headless mode" and goes on; setting
``EGL_PLATFORM=surfaceless`` changes nothing in this build. Without a Vulkan device (no loader,
no ICD, or ``VK_ICD_FILENAMES`` pointing nowhere) Filament *aborts the process*
(``PostconditionPanic: Unable to create Vulkan instance``), which is why
:func:`shaded_available` probes in a subprocess with a time limit.

``FINEPOSE_SHADED=0`` (or ``off``/``false``/``no``) turns shaded rendering off without probing.

Speed (600x400 car mesh, 2-core CPU, lavapipe, machine shared with other jobs): creating the
renderer ~0.1 s; the first frame ~0.3 s with Mesa's on-disk shader cache warm
(``~/.cache/mesa_shader_cache`` or ``$MESA_SHADER_CACHE_DIR``) and ~2 s cold (pipeline
compilation); then ~0.05 s for the colour pass plus ~0.05 s for the depth pass that gives the
exact coverage (alpha): ~0.1 s a frame, ~0.15 s for :func:`shaded_overlay`. The probe (~1.5-3
s, once per process) renders the same material, so it also warms the shader cache. Frames of
many seconds (and "60 s first frames") came from the two lavapipe pathologies below, not from
shader compilation.

Open3D quirks handled here
--------------------------
* One Filament engine per process: deleting an ``OffscreenRenderer`` while another is alive
  (also at interpreter exit) aborts with ``PreconditionPanic: destroying MaterialInstance ...
  still in use``. So one ``OffscreenRenderer`` (the *canvas*) is shared by all
  :class:`ShadedRenderer` objects; smaller images are rendered in its top-left corner (exact:
  the projection is K with the canvas size), and a larger image replaces it.
* Filament and Open3D log to **stdout** (``FEngine ... created``, ``Vulkan device driver``);
  that is sent to stderr while the canvas is created and first used, so a command's JSON on
  stdout stays clean.
* Open3D maps K's principal point to the pixel *corner* convention; finepose's (u, v) put the
  top-left pixel centre at (0, 0), so K gets (u + 0.5, v + 0.5). With that the depth-pass
  coverage equals :class:`geometry.render.SilhouetteRenderer`'s silhouette (IoU 1.0).
* ``pose.mesh_frame`` (possibly improper, a mirror) is the geometry's model transform and the
  camera is the proper ``(R, t)`` of :func:`geometry.camera.extrinsics`; Filament transforms
  normals by the cofactor matrix and Open3D's lit material is double sided (no back-face
  culling), so mirrored frames and CAD meshes with inconsistent winding render without holes.
* Each mesh is added to the shared scene once and then only shown/hidden: removing and
  re-adding geometry a few times left lavapipe spinning in a draw for minutes (a hang seen
  repeatedly on Mesa 22.3); unshared (flat-shaded) vertices made every frame 10-100x slower.
* Without post-processing the output is linear (dark); it stays on (tone mapping), with
  shadows off and a head light along the optical axis (slightly from above-left).

Not thread-safe beyond a module lock: use it from one thread (Filament binds its context to
the creating thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import subprocess
import sys
import threading

import numpy as np

from .camera import extrinsics, intrinsics
from .mesh import Mesh
from .images import as_rgb
from .masks import border_pixels, outline_thickness
from .pose import Pose

#: Grey of the model (linear RGB, Filament's base colour).
MODEL_GREY = (0.72, 0.72, 0.72)
#: Outline colour drawn around the silhouette in :func:`shaded_overlay`.
OUTLINE_COLOUR = (0, 230, 80)

#: Seconds the OffscreenRenderer probe may take (a first Vulkan start on a CPU can be slow).
PROBE_TIMEOUT_S = 180.0

# The probe renders a small lit triangle exactly as ShadedRenderer does and checks that it is
# covered; it prints "finepose-shaded-ok" last (Filament's own chatter also goes to stdout).
_PROBE = r"""
import numpy as np, open3d as o3d
r = o3d.visualization.rendering
ren = r.OffscreenRenderer(64, 48)
mesh = o3d.geometry.TriangleMesh(
    o3d.utility.Vector3dVector(np.array([[-1.0, -1, 0], [1, -1, 0], [0, 1, 0]])),
    o3d.utility.Vector3iVector(np.array([[0, 1, 2]], dtype=np.int32)))
mesh.compute_vertex_normals()
mat = r.MaterialRecord(); mat.shader = "defaultLit"
ren.scene.add_geometry("probe", mesh, mat, False)
ren.scene.scene.enable_sun_light(True)
ext = np.eye(4); ext[:3, :3] = np.diag([1.0, -1.0, -1.0]); ext[2, 3] = 4.0
ren.setup_camera(np.array([[40.0, 0, 32], [0, 40, 24], [0, 0, 1]]), ext, 64, 48)
img = np.asarray(ren.render_to_image())
depth = np.asarray(ren.render_to_depth_image())
assert img.shape[:2] == (48, 64) and (depth < 1).sum() > 100, "nothing rendered"
print("finepose-shaded-ok", flush=True)
"""


@functools.lru_cache(maxsize=4)
def _probe(enabled: bool, timeout_s: float) -> tuple[bool, str]:
    if not enabled:
        return False, "FINEPOSE_SHADED is off"
    try:
        import open3d  # noqa: F401  (cheap check before spending a subprocess)
        from open3d.visualization import rendering  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the install
        return False, f"open3d rendering is not importable: {exc}"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired:
        return False, f"the OffscreenRenderer probe did not finish in {timeout_s:.0f} s"
    except OSError as exc:  # pragma: no cover
        return False, f"could not start the probe: {exc}"
    if done.returncode == 0 and "finepose-shaded-ok" in done.stdout:
        return True, "Open3D OffscreenRenderer works"
    tail = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
    return False, f"Open3D OffscreenRenderer probe failed (exit {done.returncode}): {tail}"


def shaded_available(*, enabled: bool = True, probe_timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when an Open3D ``OffscreenRenderer`` can really render here (probed once per
    process in a subprocess, with a time limit of ``probe_timeout_s`` seconds; see the module
    docstring). ``enabled=False`` (the user turned shaded rendering off) answers False at once."""
    return _probe(bool(enabled), float(probe_timeout_s))[0]


def shaded_unavailable_reason(*, enabled: bool = True, probe_timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """Why :func:`shaded_available` is false (or that it works), for the same arguments."""
    return _probe(bool(enabled), float(probe_timeout_s))[1]


# -- the shared canvas ----------------------------------------------------------------------

_LOCK = threading.RLock()


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send fd 1 to fd 2 for a while: Filament and Open3D log to stdout from C++."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no real stdout: nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        _flush_c_stdio()  # C++ logs sit in libc's buffer: flush them while fd 1 is still stderr
        os.dup2(saved, 1)
        os.close(saved)


class _Canvas:
    """The one live ``OffscreenRenderer`` of this process (see the module docstring)."""

    renderer = None
    width = 0
    height = 0
    owner: object = None  # the ShadedRenderer whose geometry the scene holds
    frames = 0

    @classmethod
    def get(cls, width: int, height: int):
        if cls.renderer is not None and width <= cls.width and height <= cls.height:
            return cls.renderer
        from open3d.visualization import rendering

        width, height = max(width, cls.width), max(height, cls.height)
        if cls.renderer is not None:
            cls.renderer = None  # the only one alive: safe to destroy before the next
            cls.owner = None
        with _stdout_to_stderr():
            renderer = rendering.OffscreenRenderer(int(width), int(height))
        scene = renderer.scene
        scene.set_background([0.0, 0.0, 0.0, 1.0])
        scene.show_axes(False)
        scene.set_lighting(rendering.Open3DScene.LightingProfile.NO_SHADOWS, np.array([0.0, 0.0, -1.0], np.float32))
        scene.view.set_shadowing(False)
        scene.view.set_ambient_occlusion(False)
        scene.view.set_antialiasing(False)
        scene.scene.enable_sun_light(True)
        scene.scene.enable_indirect_light(True)
        scene.scene.set_indirect_light_intensity(20000.0)
        cls.renderer, cls.width, cls.height, cls.frames = renderer, width, height, 0
        return renderer


class ShadedRenderer:
    """Lit grey renders of one mesh at finepose poses (one per mesh; reuse it across frames).

    ``render(pose)`` gives an RGBA uint8 image of ``pose.height`` x ``pose.width``: RGB the
    shaded model on black, alpha 255 exactly where the model covers the pixel centre (Open3D's
    depth pass; the same pixels as :class:`geometry.render.SilhouetteRenderer`).
    """

    _count = 0

    def __init__(self, mesh: Mesh, colour=MODEL_GREY, light_intensity: float = 75000.0):
        self.mesh = mesh
        self.colour = tuple(float(c) for c in colour)
        self.light_intensity = float(light_intensity)
        self._frame: np.ndarray | None = None
        ShadedRenderer._count += 1
        self.name = f"finepose-model-{ShadedRenderer._count}"
        self._radius = max(mesh.radius, 1e-9)

    # -- geometry --------------------------------------------------------------------------
    def _legacy_mesh(self):
        """The mesh as an Open3D mesh with Open3D's area-weighted vertex normals.

        Vertices stay shared: unshared (flat-shaded) copies made lavapipe 10-100x slower per
        frame (0.7-6 s instead of 0.05 s at 600x400).
        """
        import open3d as o3d

        legacy = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(self.mesh.vertices),
            o3d.utility.Vector3iVector(np.ascontiguousarray(self.mesh.triangles, dtype=np.int32)),
        )
        legacy.compute_vertex_normals()
        return legacy

    def _material(self):
        from open3d.visualization import rendering

        material = rendering.MaterialRecord()
        material.shader = "defaultLit"
        material.base_color = [*self.colour, 1.0]
        material.base_roughness = 0.7
        material.base_reflectance = 0.3
        return material

    def _prepare(self, renderer, frame: np.ndarray) -> None:
        """Show this mesh (added once, never removed) with ``frame`` as its model transform."""
        scene = renderer.scene
        if _Canvas.owner is not self:
            if _Canvas.owner is not None and scene.has_geometry(_Canvas.owner.name):
                scene.show_geometry(_Canvas.owner.name, False)
            if not scene.has_geometry(self.name):
                scene.add_geometry(self.name, self._legacy_mesh(), self._material(), False)
                self._frame = None
            scene.show_geometry(self.name, True)
            _Canvas.owner = self
        if self._frame is None or not np.allclose(self._frame, frame):
            model = np.eye(4)
            model[:3, :3] = frame
            scene.set_geometry_transform(self.name, model)
            self._frame = np.array(frame, dtype=float)

    # -- rendering -------------------------------------------------------------------------
    def render(self, pose: Pose, alpha: bool = True) -> np.ndarray:
        """RGBA (``alpha=True``, exact coverage) or RGB uint8 image of the model at ``pose``."""
        width, height = int(pose.width), int(pose.height)
        with _LOCK:
            renderer = _Canvas.get(width, height)
            self._prepare(renderer, pose.mesh_frame)
            rot, t = extrinsics(pose)  # the mesh frame is the model transform
            ext = np.eye(4)
            ext[:3, :3], ext[:3, 3] = rot, t
            k = intrinsics(pose)
            k[0, 2] += 0.5  # finepose: pixel centres at integers; Open3D: at half-integers
            k[1, 2] += 0.5
            canvas_w, canvas_h = _Canvas.width, _Canvas.height
            renderer.setup_camera(k, ext, canvas_w, canvas_h)
            self._set_near_far(renderer, k, pose, canvas_w, canvas_h)
            # Head light: along the optical axis, a little from above-left (camera y is down).
            light = rot.T @ np.array([0.25, 0.35, 1.0])
            renderer.scene.scene.set_sun_light(
                (light / np.linalg.norm(light)).astype(np.float32), np.ones(3, np.float32), self.light_intensity
            )
            quiet = _stdout_to_stderr() if _Canvas.frames == 0 else contextlib.nullcontext()
            with quiet:
                rgb = np.asarray(renderer.render_to_image())[:height, :width, :3]
                depth = np.asarray(renderer.render_to_depth_image())[:height, :width] if alpha else None
            _Canvas.frames += 1
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        if depth is None:
            return rgb
        covered = depth < 1.0
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        rgba[..., :3] = np.where(covered[..., None], rgb, 0)
        rgba[..., 3] = covered * np.uint8(255)
        return rgba

    def _set_near_far(self, renderer, k, pose: Pose, width: int, height: int) -> None:
        """Near/far planes from the model's bounding sphere (not Open3D's scene box, which
        may hold geometry of other sizes), kept in front of the camera."""
        near = max(pose.distance - 1.05 * self._radius, 1e-3 * pose.distance)
        far = pose.distance + 1.05 * self._radius
        renderer.scene.camera.set_projection(k, near, far, float(width), float(height))


def shaded_overlay(image, renderer: ShadedRenderer, pose: Pose, alpha: float = 0.5, outline_colour=OUTLINE_COLOUR) -> np.ndarray:
    """``image`` (H x W, grey or RGB; None for a dark grey canvas of the pose's size) with the
    shaded model blended over it at opacity ``alpha`` and its silhouette outlined.

    ``pose`` is rescaled to the image's size, so a pose for another resolution is fine.
    Returns an RGB uint8 image of the image's size.
    """
    if image is None:
        picture = np.full((int(pose.height), int(pose.width), 3), 40, dtype=np.uint8)
    else:
        picture = as_rgb(image)
    height, width = picture.shape[:2]
    if (pose.width, pose.height) != (width, height):
        pose = pose.rescaled(width, height)
    rgba = renderer.render(pose, alpha=True)
    covered = rgba[..., 3] > 0
    canvas = picture.astype(np.float32)
    canvas[covered] = (1.0 - alpha) * canvas[covered] + alpha * rgba[..., :3][covered].astype(np.float32)
    thickness = outline_thickness(width, height)
    canvas[border_pixels(covered, thickness)] = np.asarray(outline_colour, dtype=np.float32)
    return canvas.clip(0, 255).astype(np.uint8)
