"""``finepose dataset import-seed | import-pascal3d | export``: datasets in and out of Label Studio."""

from __future__ import annotations

from pathlib import Path

from ls_backend.cli.output import print_json


def register(subparsers) -> None:
    dataset = subparsers.add_parser("dataset", help="bring datasets in and out of Label Studio")
    sub = dataset.add_subparsers(dest="dataset_command", required=True)

    def destination(p):
        p.add_argument("--images", type=Path, required=True, help="folder of the photos (for their sizes)")
        p.add_argument("--image-url", default="/data/local-files/?d={name}",
                       help="task image URL with {name} for the file name (default: %(default)s)")
        p.add_argument("--out", type=Path, help="write the tasks to this JSON file")
        p.add_argument("--project", type=int, help="import the tasks into this Label Studio project")

    p = sub.add_parser("import-seed", help="a release pickle (+ refined pickle) as tasks")
    p.add_argument("--anno", type=Path, required=True, help="human poses, *_anno.pkl")
    p.add_argument("--refined", type=Path, help="refined poses, *_anno_v2.pkl: become predictions")
    destination(p)
    p.set_defaults(func=cmd_import, reader="seed")

    p = sub.add_parser("import-pascal3d", help="Pascal3D+/ObjectNet3D viewpoint records as tasks")
    p.add_argument("--viewpoints", type=Path, required=True, help="JSON {image: viewpoint record}")
    destination(p)
    p.set_defaults(func=cmd_import, reader="pascal3d")

    p = sub.add_parser("export", help="a project's final poses as finepose-poses JSON (+ release pickle)")
    p.add_argument("--project", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pickle", type=Path, help="also write the release's pickle format")
    p.add_argument("--seed", type=int, default=0, help="seed of the random split when no standard one is known")
    p.set_defaults(func=cmd_export)


def _resources():
    from ls_backend.resources import Resources

    return Resources.shared()


def cmd_import(args) -> None:
    from ls_backend.tools.dataset import DatasetError, import_tasks, pascal3d_tasks, seed_tasks

    if not args.images.is_dir():
        raise DatasetError(f"image folder not found: {args.images}")
    if args.reader == "seed":  # the refined poses' numbers in each model's registered frame
        tasks, missing = seed_tasks(args.anno, args.images, args.image_url, args.refined,
                                    registry=_resources().registry)
    else:
        tasks, missing = pascal3d_tasks(args.viewpoints, args.images, args.image_url)
    client = _resources().client() if args.project else None
    summary = import_tasks(tasks, missing, args.images, out=args.out, project=args.project, client=client)
    if args.project and _resources().settings.editor_url:  # the new tasks' pose-editor links
        from ls_backend.editor.links import fill_project_links

        summary["editor"] = fill_project_links(client, args.project, _resources().settings)
    print_json(summary)


def cmd_export(args) -> None:
    from ls_backend.tools.dataset import export_project

    resources = _resources()
    print_json(export_project(resources.client(), args.project, args.out, args.pickle, args.seed, resources.registry))
