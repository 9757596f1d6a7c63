"""``finepose evaluate``: IoU of pose sets against ground-truth masks (the paper's Tables 2/3)."""

from __future__ import annotations

import re
from pathlib import Path

from geometry.frames import FRAMES

from ls_backend.cli.output import print_json
from ls_backend.errors import DataError
from ls_backend.tools.statistics import BOOTSTRAP_RESAMPLES


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="IoU of pose sets against ground-truth masks (Tables 2/3)")
    p.add_argument("--masks", help="folder of ground-truth masks <image stem>.png")
    p.add_argument("--masks-project", type=int,
                   help="or a Label Studio project whose brush annotations are the masks (templates/segmentation_gt.xml)")
    p.add_argument("--set", action="append", required=True, metavar="NAME=PATH",
                   help="a named pose set (release .pkl, finepose-poses .json, folder of pose JSON); twice or more")
    p.add_argument("--registry", help="JSON {model id: {mesh, frame}}")
    p.add_argument("--mesh", help="one mesh for every model (instead of --registry)")
    p.add_argument("--frame", choices=sorted(FRAMES),
                   help="the frame of --mesh: poses are expressed in it (as --frame everywhere); default: their own")
    p.add_argument("--images", help="text file of image names to evaluate (default: every mask)")
    p.add_argument("--out", required=True, help="folder for per_image.csv, iou_histogram.png, evaluation.json")
    p.add_argument("--bootstrap", type=int, default=BOOTSTRAP_RESAMPLES, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of the table")
    p.set_defaults(func=cmd_evaluate)


def named_sets(texts: list[str]) -> dict[str, str]:
    """``["NAME=PATH", ...]`` -> ``{name: path}``; names must differ."""
    named = {}
    for text in texts:
        name, sep, path = text.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not path:
            raise DataError(f"--set must look like NAME=PATH (NAME of letters, digits, _ . -), got {text!r}")
        if name in named:
            raise DataError(f"pose set names must differ: {name} given twice")
        named[name] = path
    return named


def cmd_evaluate(args) -> None:
    from ls_backend.registry import Registry
    from ls_backend.tools.evaluate import MaskFolder, ProjectMasks, iou_table, run_evaluation

    sets = named_sets(args.set)
    if bool(args.registry) == bool(args.mesh):
        raise DataError("give either --registry (model id -> mesh) or --mesh (one mesh for every model)")
    if args.frame and not args.mesh:
        raise DataError("--frame goes with --mesh; a registry names each model's frame")
    meshes = Registry.load(args.registry) if args.registry else Registry.single(args.mesh, args.frame)
    if bool(args.masks) == bool(args.masks_project):
        raise DataError("give either --masks (a PNG folder) or --masks-project (a Label Studio project id)")
    if args.masks:
        masks = MaskFolder(args.masks)
    else:
        from ls_backend.resources import Resources

        masks = ProjectMasks(Resources.shared().client(), args.masks_project)
    images = None
    if args.images:
        listed = Path(args.images)
        if not listed.is_file():
            raise DataError(f"image list not found: {listed}")
        images = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
    summary = run_evaluation(masks, sets, meshes, Path(args.out), images, resamples=args.bootstrap, seed=args.seed)
    if args.json:
        print_json(summary)
    else:
        print(iou_table(summary))
