"""``finepose registry add | match | from-cad | label-config``: build the mesh registry the
backend reads, and a project's labeling config listing its models."""

from __future__ import annotations

from geometry.frames import FRAMES

from ls_backend.cli.output import print_json
from ls_backend.registry.build import RELEASE_MESH_FRAME
from ls_backend.registry.schema import CATEGORIES


def register(subparsers) -> None:
    p = subparsers.add_parser("registry", help="build the mesh registry (category/model id -> mesh, frame)")
    sub = p.add_subparsers(dest="registry_command", required=True)

    def mesh_args(q, by_default):
        q.add_argument("--shapenet-root", help="ShapeNetCore.v1 root: ROOT/<synset>/<model_id>/model.obj")
        q.add_argument("--synset", help="car, airplane or an 8-digit synset id (with --shapenet-root)")
        q.add_argument("--mesh-template", help="mesh path with {model_id} (instead of --shapenet-root)")
        q.add_argument("--frame", choices=sorted(FRAMES), default=RELEASE_MESH_FRAME, help="mesh frame of the meshes")
        q.add_argument("--category", choices=CATEGORIES,
                       help="segmentation category of every entry (default: the one --synset names)")
        q.add_argument("--by", choices=("category", "model"), default=by_default, help="registry keys")
        q.add_argument("--out", required=True, help="registry JSON to write")

    q = sub.add_parser("add", help="add one CAD model: its frame found from its shape (or given), and a preview")
    q.add_argument("mesh", help="the model's mesh: OBJ, OFF, PLY, STL, GLB or glTF")
    q.add_argument("--id", required=True, dest="model_id", help="the model id tasks name in data.model")
    q.add_argument("--category", required=True, choices=CATEGORIES)
    q.add_argument("--registry", default="registry.json",
                   help="registry JSON to add to (made if missing; default: %(default)s in this folder)")
    q.add_argument("--frame", default="auto", choices=["auto", *sorted(FRAMES)],
                   help="auto: find up and front from the shape (and keypoints); or a known frame")
    q.add_argument("--up", help="override: the mesh axis pointing up, e.g. --up=+y")
    q.add_argument("--front", help="override: the mesh axis pointing to the model's front, e.g. --front=-z")
    q.add_argument("--keypoints", help="the model's 3D keypoints JSON (default: <mesh stem>_keypoints.json beside it)")
    q.add_argument("--replace", action="store_true", help="replace an entry with this id")
    q.set_defaults(func=cmd_add)

    q = sub.add_parser("match", help="match category names to CAD model names")
    q.add_argument("--categories", required=True, help="text file, one category name per line")
    q.add_argument("--metadata", required=True, help="JSON {model_id: name} or CSV (fullId/model_id/id, name)")
    q.add_argument("--top", type=int, default=3, help="suggestions per unmatched category")
    q.add_argument("--accept", type=float, help="accept a unique best suggestion scoring at least this")
    q.add_argument("--report", help="write the matches and suggestions here too")
    mesh_args(q, "category")
    q.set_defaults(func=cmd_match)

    q = sub.add_parser("from-cad", help="registry from the release's CAD/*.txt (category i -> model id)")
    q.add_argument("--cad", required=True, help="CAD/StanfordCars3D.txt, FGVC_Aircraft3D.txt or CompCars3D.txt")
    q.add_argument("--names", help="category names, one per line in the CAD list's order")
    mesh_args(q, "model")
    q.set_defaults(func=cmd_from_cad)

    q = sub.add_parser("label-config", help="the pose template with the registry's models as a model list")
    q.add_argument("--registry", required=True, help="the registry JSON (FINEPOSE_REGISTRY's file)")
    q.add_argument("--category", choices=CATEGORIES, help="the project's category (default: the registry's only one)")
    q.add_argument("--default", help="model id preselected: the project's default for photos naming no model")
    q.add_argument("--out", required=True, help="labeling config XML to write")
    q.set_defaults(func=cmd_label_config)


def _meshes(args) -> dict:
    """The options naming the entries' mesh paths, frame, category and keys."""
    return {"shapenet_root": args.shapenet_root, "synset": args.synset, "mesh_template": args.mesh_template,
            "category": args.category, "frame": args.frame, "by": args.by}


def cmd_add(args) -> None:
    from pathlib import Path

    from ls_backend.registry.add import add_model

    print_json(add_model(Path(args.registry), Path(args.mesh), args.model_id, args.category, frame=args.frame,
                         up=args.up, front=args.front, keypoints=Path(args.keypoints) if args.keypoints else None,
                         replace=args.replace))


def cmd_match(args) -> None:
    from ls_backend.registry.build import match_registry

    print_json(match_registry(args.categories, args.metadata, args.out, top=args.top, accept=args.accept,
                              report=args.report, **_meshes(args)))


def cmd_from_cad(args) -> None:
    from ls_backend.registry.build import registry_from_cad

    print_json(registry_from_cad(args.cad, args.out, names=args.names, **_meshes(args)))


def cmd_label_config(args) -> None:
    from ls_backend.registry.label_config import write_label_config

    print_json(write_label_config(args.registry, args.out, category=args.category, default=args.default))
