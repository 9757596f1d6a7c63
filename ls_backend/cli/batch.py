"""``finepose refine-batch``: refine the poses listed in a manifest, in parallel and resumably."""

from __future__ import annotations

from geometry.refine import METHODS

from ls_backend.cli.output import print_json
from ls_backend.tools.executors import EXECUTORS


def register(subparsers) -> None:
    p = subparsers.add_parser("refine-batch", help="refine many poses listed in a manifest (resumable, parallel)")
    p.add_argument("manifest", help="JSON list, {\"items\": [...]} or JSON lines of {id, mesh, mask, pose, [frame], [image]}")
    p.add_argument("--out", required=True, help="results JSON lines; items already in it are skipped")
    p.add_argument("--executor", choices=EXECUTORS, default="process", help="where to refine (default: local processes)")
    p.add_argument("--workers", type=int, help="worker processes (default: all local cores / the Ray cluster's CPUs)")
    p.add_argument("--method", choices=METHODS, default="fast")
    p.add_argument("--ray-address", help="Ray cluster to connect to (default: start a local one)")
    p.add_argument("--retry-failed", action="store_true", help="refine again the items whose line is an error")
    p.set_defaults(func=cmd_refine_batch)


def cmd_refine_batch(args) -> None:
    """Print the summary of :func:`ls_backend.tools.batch.run_batch` as JSON."""
    from ls_backend.tools.batch import run_batch

    print_json(run_batch(args.manifest, args.out, executor=args.executor, workers=args.workers, method=args.method,
                         ray_address=args.ray_address, retry_failed=args.retry_failed))
