"""Pose commands: ``render``, ``iou``, ``refine``, ``init``, ``from-release``, ``export``.

Poses are pose JSON files in any convention (:mod:`geometry.pose_io`); masks any image file
(:func:`geometry.masks.read_mask`); a pose is rescaled to the mask's size when they differ.
"""

from __future__ import annotations

from pathlib import Path

from geometry.frames import FRAMES, frame_matrix
from geometry.masks import read_mask, write_mask
from geometry.mesh import load_mesh
from geometry.pose import Pose
from geometry.pose_io import load_pose, pose_to_dict
from geometry.refine import METHODS, refine
from geometry.render import SilhouetteRenderer

from ls_backend.cli.output import print_json, size
from ls_backend.errors import ConfigError


def register(subparsers) -> None:
    def mesh_args(p):
        p.add_argument("--mesh", required=True, help="OBJ/OFF/PLY/STL/GLB file")
        p.add_argument("--frame", choices=sorted(FRAMES),
                       help="the mesh's frame: the pose is expressed in it (converted when it names another frame, "
                            "a release pose into shapenet_core through the model's mirror symmetry); default: the pose's own")

    p = subparsers.add_parser("render", help="render a silhouette mask PNG")
    mesh_args(p)
    p.add_argument("--pose", required=True, help="pose JSON (any supported convention)")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=size, help="WxH; the pose is rescaled to it")
    p.set_defaults(func=cmd_render)

    p = subparsers.add_parser("iou", help="IoU of the silhouette with a reference mask")
    mesh_args(p)
    p.add_argument("--pose", required=True)
    p.add_argument("--mask", required=True)
    p.set_defaults(func=cmd_iou)

    p = subparsers.add_parser("refine", help="refine a pose against a reference mask")
    mesh_args(p)
    p.add_argument("--pose", required=True)
    p.add_argument("--mask", required=True)
    p.add_argument("--image", help="photo to draw the overlay on")
    p.add_argument("--overlay", help="write an overlay PNG here")
    p.add_argument("--shaded", action="store_true",
                   help="draw the refined model shaded over --image (Open3D OffscreenRenderer, needs Vulkan)")
    p.add_argument("--method", choices=METHODS, default="fast")
    p.set_defaults(func=cmd_refine)

    p = subparsers.add_parser("init", help="automatic initial pose from a mask alone")
    p.add_argument("--mesh", required=True)
    p.add_argument("--frame", choices=sorted(FRAMES), default="pascal3d")
    p.add_argument("--mask", required=True)
    p.add_argument("--focal", type=float, help="focal length in pixels (default 1.155 x mask width)")
    p.set_defaults(func=cmd_init)

    p = subparsers.add_parser("from-release", help="one record of a release pickle as canonical pose JSON")
    p.add_argument("--anno", required=True, help="*_anno.pkl or *_anno_v2.pkl")
    p.add_argument("--key", required=True, help="image file name, e.g. 00001.jpg")
    p.add_argument("--image-size", type=size, required=True, help="original image size WxH")
    p.set_defaults(func=cmd_from_release)

    p = subparsers.add_parser("export", help="write a pose in another convention")
    p.add_argument("--pose", required=True)
    p.add_argument("--convention", choices=("finepose", "pascal3d", "seed"), required=True)
    p.add_argument("--image-size", type=size, help="seed: the original image size WxH")
    p.set_defaults(func=cmd_export)


def _pose_for(args, mask_shape=None) -> Pose:
    """The ``--pose`` file, in ``--frame`` when given, rescaled to ``mask_shape`` (H, W) when given."""
    pose = load_pose(args.pose, model_frame=getattr(args, "frame", None))
    if mask_shape is not None:
        height, width = mask_shape
        if (pose.width, pose.height) != (width, height):
            pose = pose.rescaled(width, height)
    return pose


def cmd_render(args) -> None:
    pose = _pose_for(args)
    if args.size:
        pose = pose.rescaled(*args.size)
    mask = SilhouetteRenderer(load_mesh(args.mesh)).render(pose)
    write_mask(args.out, mask)
    print_json({"out": str(args.out), "width": pose.width, "height": pose.height, "area": int(mask.sum())})


def cmd_iou(args) -> None:
    from geometry.iou import iou

    reference = read_mask(args.mask)
    pose = _pose_for(args, reference.shape)
    mask = SilhouetteRenderer(load_mesh(args.mesh)).render(pose)
    print_json({"iou": iou(mask, reference)})


def cmd_refine(args) -> None:
    reference = read_mask(args.mask)
    pose = _pose_for(args, reference.shape)
    renderer = SilhouetteRenderer(load_mesh(args.mesh))
    result = refine(renderer, reference, pose, method=args.method)
    out = result.to_dict()
    if args.overlay:
        write_refine_overlay(Path(args.overlay), args.image, renderer, reference, result.initial, result.refined,
                             args.shaded)
        out["overlay"] = str(args.overlay)
    print_json(out)


def write_refine_overlay(path: Path, image_path, renderer, reference, initial: Pose, refined: Pose,
                         shaded: bool = False) -> None:
    """Reference, initial and refined outlines over the photo at ``image_path`` (grey when
    None), at the photo's size (else the reference's); ``shaded``: the refined model drawn
    shaded too (needs a photo)."""
    from geometry.overlay import COLOURS, save_overlay

    from geometry.images import read_rgb

    image = read_rgb(image_path) if image_path else None
    height, width = reference.shape if image is None else image.shape[:2]
    masks = {
        "reference": reference,
        "initial": renderer.render(initial.rescaled(width, height)),
        "refined": renderer.render(refined.rescaled(width, height)),
    }
    if shaded and image is not None:
        from geometry.shaded import ShadedRenderer, shaded_available, shaded_overlay, shaded_unavailable_reason

        from ls_backend.settings import Settings

        settings = Settings.from_env()
        switch = {"enabled": settings.shaded, "probe_timeout_s": settings.shaded_probe_timeout_s}
        if not shaded_available(**switch):
            raise ConfigError(f"--shaded: no shaded rendering here ({shaded_unavailable_reason(**switch)})")
        image = shaded_overlay(image, ShadedRenderer(renderer.mesh), refined.rescaled(width, height), alpha=0.4,
                               outline_colour=COLOURS["refined"])
    save_overlay(path, image, masks, size=(width, height))


def cmd_init(args) -> None:
    from geometry.init_pose import initial_pose

    reference = read_mask(args.mask)
    renderer = SilhouetteRenderer(load_mesh(args.mesh))
    result = initial_pose(renderer, reference, focal=args.focal, mesh_frame=frame_matrix(args.frame))
    print_json(result.to_dict())


def cmd_from_release(args) -> None:
    from ls_backend.tools.dataset import release_pose_json

    print_json(release_pose_json(Path(args.anno), args.key, *args.image_size))


def cmd_export(args) -> None:
    pose = load_pose(args.pose)
    kwargs = {}
    if args.convention == "seed":
        width, height = args.image_size or (pose.width, pose.height)
        kwargs = {"width": width, "height": height}
    print_json(pose_to_dict(pose, args.convention, **kwargs))
