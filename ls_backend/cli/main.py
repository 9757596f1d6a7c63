"""The ``finepose`` command line. Every command prints JSON on stdout; errors go to stderr
with exit status 2 and name what is wrong."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from geometry.frames import FRAMES, frame_matrix
from geometry.mesh import MeshError, load_mesh
from geometry.masks import MaskError, read_mask, write_mask
from geometry.pose import Pose, PoseError
from geometry.pose_io import load_pose, pose_to_dict
from geometry.refine import METHODS, refine
from geometry.render import SilhouetteRenderer


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 600x400, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def _print(data) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _pose_for(args, mask_shape=None) -> Pose:
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
    _print({"out": str(args.out), "width": pose.width, "height": pose.height, "area": int(mask.sum())})


def cmd_iou(args) -> None:
    from geometry.iou import iou

    reference = read_mask(args.mask)
    pose = _pose_for(args, reference.shape)
    mask = SilhouetteRenderer(load_mesh(args.mesh)).render(pose)
    _print({"iou": iou(mask, reference)})


def cmd_refine(args) -> None:
    reference = read_mask(args.mask)
    pose = _pose_for(args, reference.shape)
    renderer = SilhouetteRenderer(load_mesh(args.mesh))
    result = refine(renderer, reference, pose, method=args.method)
    out = result.to_dict()
    if args.overlay:
        _write_overlay(args.overlay, args.image, renderer, reference, result.initial, result.refined, args.shaded)
        out["overlay"] = str(args.overlay)
    _print(out)


def _write_overlay(path, image_path, renderer, reference, initial, refined, shaded=False) -> None:
    from geometry.overlay import save_overlay

    image = None
    if image_path:
        from skimage.io import imread

        if not Path(image_path).is_file():
            raise MaskError(f"image file not found: {image_path}")
        image = imread(image_path)
    height, width = reference.shape if image is None else image.shape[:2]
    masks = {
        "reference": reference,
        "initial": renderer.render(initial.rescaled(width, height)),
        "refined": renderer.render(refined.rescaled(width, height)),
    }
    if shaded and image is not None:
        from geometry.overlay import COLOURS
        from geometry.shaded import ShadedRenderer, shaded_available, shaded_overlay, shaded_unavailable_reason

        from ls_backend.settings import Settings

        settings = Settings.from_env()
        switch = {"enabled": settings.shaded, "probe_timeout_s": settings.shaded_probe_timeout_s}
        if not shaded_available(**switch):
            raise ValueError(f"--shaded: no shaded rendering here ({shaded_unavailable_reason(**switch)})")
        image = shaded_overlay(image, ShadedRenderer(renderer.mesh), refined.rescaled(width, height), alpha=0.4,
                               outline_colour=COLOURS["refined"])
    save_overlay(path, image, masks, size=(width, height))


def cmd_init(args) -> None:
    from geometry.init_pose import initial_pose

    reference = read_mask(args.mask)
    renderer = SilhouetteRenderer(load_mesh(args.mesh))
    result = initial_pose(renderer, reference, focal=args.focal, mesh_frame=frame_matrix(args.frame))
    _print(result.to_dict())


def cmd_import_seed(args) -> None:
    import pickle

    from geometry.conventions import seed

    try:
        with open(args.anno, "rb") as f:
            records = pickle.load(f, encoding="latin1")
    except FileNotFoundError:
        raise PoseError(f"annotation file not found: {args.anno}") from None
    except (pickle.UnpicklingError, EOFError) as exc:
        raise PoseError(f"{args.anno}: not a release pickle ({exc})") from None
    if args.key not in records:
        raise PoseError(f"{args.anno}: no record for {args.key!r}")
    record = records[args.key]
    pose = seed.to_pose(record, *args.image_size)
    out = pose.to_dict()
    out["mesh_frame"] = {"name": "shapenet_seed", "matrix": pose.mesh_frame.tolist()}
    out["source"] = {"convention": "seed", "file": str(args.anno), "key": args.key,
                     "model_id": record.get("model_id"), "original_size": list(args.image_size)}
    _print(out)


def cmd_export(args) -> None:
    pose = load_pose(args.pose)
    kwargs = {}
    if args.convention == "seed":
        width, height = args.image_size or (pose.width, pose.height)
        kwargs = {"width": width, "height": height}
    _print(pose_to_dict(pose, args.convention, **kwargs))


def cmd_demo(args) -> None:
    from ls_backend.tools.demo import run_demo

    _print(run_demo(out_dir=Path(args.out), method=args.method, seed=args.seed))


def cmd_serve(args) -> None:
    from ls_backend.backend.serve import serve

    serve(args.host, args.port, args.workers, args.threads, dev=args.dev)


def cmd_prelabel(args) -> None:
    from ls_backend.tools.prelabel import prelabel

    _print(prelabel(args.project, workers=args.workers, state=Path(args.state) if args.state else None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finepose", description="Refine 3D poses of CAD models against masks.")
    sub = parser.add_subparsers(dest="command", required=True)

    def mesh_args(p):
        p.add_argument("--mesh", required=True, help="OBJ/OFF/PLY/STL/GLB file")
        p.add_argument("--frame", choices=sorted(FRAMES),
                       help="the mesh's frame: the pose is expressed in it (converted when it names another frame, "
                            "refused across a reflection); default: the pose's own")

    p = sub.add_parser("render", help="render a silhouette mask PNG")
    mesh_args(p)
    p.add_argument("--pose", required=True, help="pose JSON (any supported convention)")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=_size, help="WxH; the pose is rescaled to it")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("iou", help="IoU of the silhouette with a reference mask")
    mesh_args(p)
    p.add_argument("--pose", required=True)
    p.add_argument("--mask", required=True)
    p.set_defaults(func=cmd_iou)

    p = sub.add_parser("refine", help="refine a pose against a reference mask")
    mesh_args(p)
    p.add_argument("--pose", required=True)
    p.add_argument("--mask", required=True)
    p.add_argument("--image", help="photo to draw the overlay on")
    p.add_argument("--overlay", help="write an overlay PNG here")
    p.add_argument("--shaded", action="store_true",
                   help="draw the refined model shaded over --image (Open3D OffscreenRenderer, needs Vulkan)")
    p.add_argument("--method", choices=METHODS, default="fast")
    p.set_defaults(func=cmd_refine)

    p = sub.add_parser("init", help="automatic initial pose from a mask alone")
    p.add_argument("--mesh", required=True)
    p.add_argument("--frame", choices=sorted(FRAMES), default="pascal3d")
    p.add_argument("--mask", required=True)
    p.add_argument("--focal", type=float, help="focal length in pixels (default 1.155 x mask width)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("import-seed", help="one release record as canonical pose JSON")
    p.add_argument("--anno", required=True, help="*_anno.pkl or *_anno_v2.pkl")
    p.add_argument("--key", required=True, help="image file name, e.g. 00001.jpg")
    p.add_argument("--image-size", type=_size, required=True, help="original image size WxH")
    p.set_defaults(func=cmd_import_seed)

    p = sub.add_parser("export", help="write a pose in another convention")
    p.add_argument("--pose", required=True)
    p.add_argument("--convention", choices=("finepose", "pascal3d", "seed"), required=True)
    p.add_argument("--image-size", type=_size, help="seed: the original image size WxH")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="refine a procedural car against a noisy mask (no data needed)")
    p.add_argument("--out", default="finepose-demo", help="folder for the mask and overlay PNGs")
    p.add_argument("--method", choices=METHODS, default="fast")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve the Label Studio ML backend (settings from the environment)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=8, help="threads per worker")
    p.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("prelabel", help="refine every task of a Label Studio project into predictions")
    p.add_argument("--project", type=int, required=True, help="Label Studio project id")
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    p.add_argument("--state", help="JSON-lines progress file (default: MODEL_DIR/prelabel-project-ID.jsonl)")
    p.set_defaults(func=cmd_prelabel)

    from ls_backend.tools.batch import register as register_batch
    from ls_backend.tools.dataset import register as register_dataset
    from ls_backend.tools.evaluate import register as register_evaluate
    from ls_backend.registry.build import register as register_registry
    from ls_backend.tools.stats import register as register_stats
    from ls_backend.tools.study import register as register_study

    register_stats(sub)
    register_evaluate(sub)
    register_registry(sub)
    register_dataset(sub)
    register_batch(sub)
    register_study(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (PoseError, MeshError, MaskError, ValueError) as exc:
        print(f"finepose {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
