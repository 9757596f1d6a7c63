"""``finepose stats``: distributions of pose parameters (the paper's Figure 7)."""

from __future__ import annotations

from pathlib import Path

from ls_backend.cli.output import print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("stats", help="distributions of pose parameters (Figure 7), human vs refined")
    p.add_argument("poses", help="pose set: release .pkl, finepose-poses .json or a folder of pose JSON")
    p.add_argument("--out", required=True, help="folder for PNG, CSV and JSON outputs")
    p.add_argument("--name", help="name of the set in file names and titles (default from the path)")
    p.add_argument("--compare", help="second pose set (e.g. the refined one); differences are it minus POSES")
    p.add_argument("--compare-name", help="name of the second set")
    p.set_defaults(func=cmd_stats)


def cmd_stats(args) -> None:
    from ls_backend.tools.stats import describe_sets

    print_json(describe_sets(args.poses, Path(args.out), name=args.name, compare=args.compare,
                             compare_name=args.compare_name))
