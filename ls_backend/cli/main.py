"""The ``finepose`` command line: the parser and its error handling.

Every command prints JSON on stdout (``evaluate`` and ``study report`` also a table). Bad
input (a :class:`~ls_backend.errors.FineposeError` or :class:`~geometry.errors.GeometryError`)
is printed on stderr as ``finepose <command>: error: <message>`` with exit status 2; argparse's
own usage errors exit 2 as well. A command that did its work but some items failed
(``prelabel``) exits :data:`ls_backend.cli.output.SOME_FAILED` (3), its failures grouped by
reason on stderr. Each command group lives in its own module and registers its
subcommands with ``register(subparsers)``; a command parses its arguments and calls a tool
function with typed arguments.
"""

from __future__ import annotations

import argparse
import os
import sys

from geometry.errors import GeometryError

from ls_backend.cli import backend, batch, dataset, editor, evaluate, pose, project, registry, stats, study, up, weights
from ls_backend.errors import FineposeError

#: Command groups in the order ``finepose --help`` lists them.
GROUPS = (pose, up, backend, project, registry, weights, dataset, stats, evaluate, study, batch, editor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finepose", description="Refine 3D poses of CAD models against masks.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except (FineposeError, GeometryError) as exc:
        print(f"finepose {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        refusal = label_studio_refusal(exc)
        if refusal is None:
            raise
        print(f"finepose {args.command}: error: {refusal}", file=sys.stderr)
        return 2
    return status or 0


def label_studio_refusal(exc: BaseException) -> str | None:
    """One line for an API error of label-studio-sdk that no command turned into a finepose
    error (its own message prints every HTTP header, session cookies included); None for
    any other exception."""
    from ls_backend.studio.client import one_line

    status = getattr(exc, "status_code", None)
    if not type(exc).__module__.startswith("label_studio_sdk") or status is None:
        return None
    return f"Label Studio answered HTTP {status}: {one_line(getattr(exc, 'body', ''))}"


if __name__ == "__main__":
    sys.exit(main())
