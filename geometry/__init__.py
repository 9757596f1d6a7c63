"""finepose's geometry: pure functions and small classes, no Label Studio.

Conventions (see :mod:`geometry.pose`): angles in degrees, distance in model units, focal and
u, v in pixels of the image the pose refers to (top-left pixel centre at (0, 0), x right,
y down); masks are boolean ``(H, W)`` arrays; meshes are read by Open3D.

The public API, by concern:

- pose: :class:`Pose`, :data:`PARAMETER_NAMES`, :class:`PoseError`;
- reading and writing poses: :func:`read_pose` (pose JSON in any convention, in a model's
  frame), :func:`load_pose`, :func:`pose_to_dict`;
- mesh frames: :data:`FRAMES`, :func:`frame_matrix`, :func:`pose_in_model_frame` (the one
  frame rule), :func:`express_in_frame`, :class:`FrameError`;
- camera: :func:`project` (mesh points -> pixels);
- meshes and silhouettes: :func:`load_mesh`, :class:`Mesh`, :class:`MeshError`,
  :class:`SilhouetteRenderer`;
- masks and IoU: :func:`read_mask`, :func:`write_mask`, :func:`resize_mask`, :func:`iou`;
- refinement: :func:`refine` (``method="fast"`` or ``"paper"``), :class:`RefineResult`;
- starts: :func:`initial_pose` (from a mask alone), :func:`fit_pose_to_keypoints`
  (clicked keypoints, focal unknown);
- errors: :class:`GeometryError`, the base of every error above.
"""

from .camera import project
from .errors import GeometryError
from .frames import FRAMES, FrameError, express_in_frame, frame_matrix, pose_in_model_frame
from .init_pose import initial_pose
from .iou import iou
from .keypoints import fit_pose_to_keypoints
from .masks import read_mask, resize_mask, write_mask
from .mesh import Mesh, MeshError, load_mesh
from .pose import PARAMETER_NAMES, Pose, PoseError
from .pose_io import load_pose, pose_to_dict, read_pose
from .refine import RefineResult, refine
from .render import SilhouetteRenderer

__all__ = [
    "FRAMES", "PARAMETER_NAMES", "FrameError", "GeometryError", "Mesh", "MeshError", "Pose", "PoseError",
    "RefineResult", "SilhouetteRenderer", "express_in_frame", "fit_pose_to_keypoints", "frame_matrix",
    "initial_pose", "iou", "load_mesh", "load_pose", "pose_in_model_frame", "pose_to_dict", "project",
    "read_mask", "read_pose", "refine", "resize_mask", "write_mask",
]
