"""``finepose project create``: a Label Studio project for a folder of photos, in one command."""

from __future__ import annotations

from pathlib import Path

from ls_backend.cli.output import print_json


def register(subparsers) -> None:
    project = subparsers.add_parser("project", help="set up a Label Studio project for your photos")
    sub = project.add_subparsers(dest="project_command", required=True)
    p = sub.add_parser("create", help="project, photos, tasks, backend and editor links (again: adds new photos)")
    p.add_argument("--title", required=True, help="the project's title (an existing project of this title is reused)")
    p.add_argument("--photos", type=Path, required=True, help="folder of photos")
    p.add_argument("--registry", type=Path, help="model registry JSON (default: FINEPOSE_REGISTRY)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", help="the registry model of every photo")
    which.add_argument("--models", type=Path, help="CSV of photo,model rows (photos without a row are left out)")
    p.add_argument("--masks", type=Path, help="folder of reference masks, matched to photos by file stem")
    p.add_argument("--poses", type=Path, help="a pose set (export JSON, release pickle, pose folder): initial poses")
    p.add_argument("--backend", metavar="URL", help="connect finepose's backend at this URL (as Label Studio reaches it)")
    p.set_defaults(func=cmd_create)


def cmd_create(args) -> None:
    from ls_backend.editor.links import fill_project_links
    from ls_backend.registry import Registry
    from ls_backend.resources import Resources
    from ls_backend.studio.client import connection
    from ls_backend.tools.project import create_project, read_models_csv

    resources = Resources.shared()
    registry = Registry.load(args.registry) if args.registry else resources.require_registry()
    print_json(create_project(connection(resources.settings), resources.settings, registry, args.title, args.photos,
                              model=args.model, models=read_models_csv(args.models) if args.models else None,
                              masks=args.masks, poses=args.poses, backend_url=args.backend, links=fill_project_links))
