"""Backend commands: ``serve`` (the Label Studio ML backend), ``prelabel`` (a whole project)
and ``demo`` (the main job on an embedded default). Settings come from the environment
(:class:`ls_backend.settings.Settings`)."""

from __future__ import annotations

from pathlib import Path

from geometry.refine import METHODS

from ls_backend.cli.output import SOME_FAILED, print_json


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
    p.add_argument("--workers", type=int, default=0,
                   help="refinement processes (default: all cores; on Ray: the CPUs the segmentation actors leave)")
    p.add_argument("--state", help="JSON-lines progress file (default: MODEL_DIR/prelabel-project-ID.jsonl)")
    p.add_argument("--retry-failed", action="store_true",
                   help="also try the tasks whose last run failed for a reason of their own (bad media, unknown model...)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the stages on a Ray cluster: auto (on a node of it) or "
                   "HEAD:6379 (default: local processes)")
    p.add_argument("--batch-size", type=int, default=4, help="photos per segmentation call (default 4)")
    p.add_argument("--segment-workers", type=int,
                   help="segmentation processes/actors (default: 1; on Ray one per GPU, else one per node)")
    p.add_argument("--gpus-per-actor", type=float, help="GPUs per segmentation actor on Ray (default: 1 on a GPU cluster)")
    p.add_argument("--chunk", type=int, default=100, help="tasks per bulk write of predictions (default 100)")
    p.add_argument("--redo-model", action="append", default=[], metavar="MODEL_ID",
                   help="predict this model's tasks again, replacing their predictions (repeatable); a model whose "
                        "mesh or frame changed since the last prelabel is redone without it")
    p.set_defaults(func=cmd_prelabel)


def cmd_demo(args) -> None:
    from ls_backend.tools.demo import run_demo

    print_json(run_demo(out_dir=Path(args.out), method=args.method, seed=args.seed))


def cmd_serve(args) -> None:
    from ls_backend.server.serve import serve

    serve(args.host, args.port, args.workers, args.threads, dev=args.dev)


def cmd_prelabel(args) -> int:
    """Print the summary as JSON; with failures, print them grouped by reason on stderr and
    return :data:`~ls_backend.cli.output.SOME_FAILED` (3)."""
    import sys

    from ls_backend.tools.prelabel import prelabel

    summary = prelabel(args.project, workers=args.workers, state=Path(args.state) if args.state else None,
                       redo_models=set(args.redo_model), retry_failed=args.retry_failed, ray_address=args.ray,
                       batch_size=args.batch_size, segment_workers=args.segment_workers,
                       gpus_per_actor=args.gpus_per_actor, chunk=args.chunk)
    print_json(summary)
    if summary["skipped_failed"]:
        print(f"finepose prelabel: {summary['skipped_failed']} tasks that failed before were not tried again "
              "(--retry-failed tries them)", file=sys.stderr)
    if not summary["failed"]:
        return 0
    print(f"finepose prelabel: {summary['failed']} of {summary['tasks']} tasks failed (each task's reason is in its "
          "finepose_error column):", file=sys.stderr)
    for reason, ids in summary["failures"].items():
        shown = ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else "")
        print(f"  {len(ids)} x {reason}  [tasks {shown}]", file=sys.stderr)
    return SOME_FAILED
