"""``finepose study create | report``: the blind human satisfaction study (the paper's Table 4)."""

from __future__ import annotations

from pathlib import Path

from ls_backend.cli.output import print_json


def register(subparsers) -> None:
    study = subparsers.add_parser("study", help="the blind human satisfaction study (Table 4)")
    sub = study.add_subparsers(dest="study_command", required=True)
    p = sub.add_parser("create", help="render overlays and create the rating project")
    p.add_argument("--human", type=Path, required=True, help="human pose set")
    p.add_argument("--refined", type=Path, required=True, help="refined pose set")
    p.add_argument("--images", type=Path, required=True, help="folder of the photos")
    p.add_argument("--registry", type=Path, required=True, help="model registry JSON (meshes)")
    p.add_argument("--media-root", type=Path, required=True, help="where overlays are written (served by Label Studio)")
    p.add_argument("--url-prefix", required=True, help="task URL of a file in --media-root, e.g. '/data/local-files/?d=study/'")
    p.add_argument("--sample", type=int, default=100)
    p.add_argument("--raters", type=int, default=3, help="ratings per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--title", default="finepose satisfaction study")
    p.set_defaults(func=cmd_create)
    p = sub.add_parser("report", help="un-blind the ratings: Table 4, kappa, CSV, bar chart")
    p.add_argument("--key", type=Path, required=True, help="the study_key.json that create wrote")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_report)


def cmd_create(args) -> None:
    from ls_backend.resources import Resources
    from ls_backend.registry import Registry
    from ls_backend.tools.study import create_study

    registry = Registry.load(args.registry)
    print_json(create_study(Resources.shared().client(), args.human, args.refined, args.images, registry,
                            args.media_root, args.url_prefix, args.sample, args.raters, args.seed, args.title))


def cmd_report(args) -> None:
    from ls_backend.resources import Resources
    from ls_backend.tools.study import rating_table, report_study

    summary = report_study(Resources.shared().client(), args.key, args.out, args.seed)
    print(rating_table(summary))
    print_json({"out": str(args.out), **summary})
