"""Backend commands: ``serve`` (the Label Studio ML backend), ``prelabel`` (a whole project)
and ``demo`` (the main job on an embedded default). Settings come from the environment
(:class:`ls_backend.settings.Settings`)."""

from __future__ import annotations

from pathlib import Path

from geometry.refine import METHODS

from ls_backend.cli.output import print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="refine a procedural car against a noisy mask (no data needed)")
    p.add_argument("--out", default="finepose-demo", help="folder for the mask and overlay PNGs")
    p.add_argument("--method", choices=METHODS, default="fast")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)

    p = subparsers.add_parser("serve", help="serve the Label Studio ML backend (settings from the environment)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=8, help="tasks refined at once per worker (FINEPOSE_THREADS); each worker holds 32 more connection threads")
    p.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("prelabel", help="refine every task of a Label Studio project into predictions")
    p.add_argument("--project", type=int, required=True, help="Label Studio project id")
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    p.add_argument("--state", help="JSON-lines progress file (default: MODEL_DIR/prelabel-project-ID.jsonl)")
    p.set_defaults(func=cmd_prelabel)


def cmd_demo(args) -> None:
    from ls_backend.tools.demo import run_demo

    print_json(run_demo(out_dir=Path(args.out), method=args.method, seed=args.seed))


def cmd_serve(args) -> None:
    from ls_backend.backend.serve import serve

    serve(args.host, args.port, args.workers, args.threads, dev=args.dev)


def cmd_prelabel(args) -> None:
    from ls_backend.tools.prelabel import prelabel

    print_json(prelabel(args.project, workers=args.workers, state=Path(args.state) if args.state else None))
