"""``finepose study create | report``: the blind satisfaction study (the paper's Table 4)."""

from __future__ import annotations

from pathlib import Path

from ls_backend.cli.output import print_json

DEFAULT_STUDIES = Path("finepose-studies")


def register(subparsers) -> None:
    study = subparsers.add_parser("study", help="the blind satisfaction study (Table 4)")
    sub = study.add_subparsers(dest="study_command", required=True)
    p = sub.add_parser("create", help="draw items, render overlays, make one rating project per rater")
    source = p.add_argument_group("what is compared (pose sets, or a Label Studio project)")
    source.add_argument("--human", type=Path, help="baseline pose set (the release: human poses)")
    source.add_argument("--refined", type=Path, help="candidate pose set (refined poses)")
    source.add_argument("--images", type=Path, help="folder of the pose sets' photos")
    source.add_argument("--from-project", type=int, metavar="ID", help="a Label Studio project's tasks instead")
    source.add_argument("--compare", nargs=2, metavar=("BASELINE", "CANDIDATE"), default=("annotation", "prediction"),
                        help="with --from-project: the two pose sources, of annotation (the newest human "
                             "annotation), prediction (finepose's refined pose), data.pose (default: annotation prediction)")
    p.add_argument("--registry", type=Path, help="model registry JSON (default: FINEPOSE_REGISTRY)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--rater", action="append", metavar="EMAIL", help="a rater's Label Studio email (repeat per rater)")
    who.add_argument("--raters", type=int, metavar="N", help="N anonymous rater projects instead")
    p.add_argument("--sample", type=int, default=100, help="items (photos) to rate")
    p.add_argument("--studies", type=Path, default=DEFAULT_STUDIES,
                   help="private folder of studies (keys); never one Label Studio serves (default: %(default)s)")
    p.add_argument("--id", dest="study_id", help="the study's id (default: a new one)")
    p.add_argument("--media-root", type=Path, help="write overlays under this folder (inside Label Studio's "
                   "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT) as Local Files storage; default: upload them")
    p.add_argument("--seed", type=int, help="seed of the sample, sides and orders, >= 0 (default: random, recorded)")
    p.add_argument("--title", default="finepose rating study")
    p.set_defaults(func=cmd_create)
    p = sub.add_parser("report", help="un-blind the ratings: Table 4 with intervals, kappa, CSV, bar chart")
    p.add_argument("--study", required=True, metavar="ID", help="the id `study create` printed")
    p.add_argument("--studies", type=Path, default=DEFAULT_STUDIES, help="where the study's folder is")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.set_defaults(func=cmd_report)


def cmd_create(args) -> None:
    from ls_backend.registry import Registry
    from ls_backend.resources import Resources
    from ls_backend.studio.client import connection
    from ls_backend.studio.media import load_image
    from ls_backend.tools import study

    resources = Resources.shared()
    registry = Registry.load(args.registry) if args.registry else resources.require_registry()
    link = connection(resources.settings)
    if args.from_project is not None:
        if any(v is not None for v in (args.human, args.refined, args.images)):
            raise study.StudyError("give either --from-project or --human/--refined/--images, not both")
        baseline, candidate = args.compare

        def load_photo(url, task_id):
            return load_image(url, resources.settings, "image", task_id, cache=resources.media_cache)

        items = study.items_from_project(link.sdk(), args.from_project, registry, load_photo, baseline, candidate)
        names = (study.SOURCE_NAMES[baseline], study.SOURCE_NAMES[candidate])
        source = {"project": args.from_project, "baseline": baseline, "candidate": candidate}
    else:
        if any(v is None for v in (args.human, args.refined, args.images)):
            raise study.StudyError("give --human, --refined and --images (or --from-project ID)")
        items = study.items_from_pose_sets(args.human, args.refined, args.images, registry)
        names = ("human", "refined")
        source = {"baseline": str(args.human), "candidate": str(args.refined), "images": str(args.images)}
    raters = study.raters_by_email(link.sdk(), args.rater) if args.rater else study.anonymous_raters(args.raters)
    print_json(study.create_study(link, items, registry, raters, args.studies, args.sample,
                                  media_root=args.media_root, document_root=resources.settings.local_files_document_root,
                                  study_id=args.study_id, seed_value=args.seed, title=args.title, names=names,
                                  source=source))


def cmd_report(args) -> None:
    from ls_backend.resources import Resources
    from ls_backend.tools.study import StudyFolder, rating_table, report_study

    folder = StudyFolder.find(args.studies, args.study)
    summary = report_study(Resources.shared().client(), folder, args.out, args.seed)
    print(rating_table(summary, summary["candidate"], summary["baseline"]))
    print_json({"out": str(args.out), **summary})
