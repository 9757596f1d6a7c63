"""``finepose up``: Label Studio, the backend and a project on this machine, in one command."""

from __future__ import annotations

import os
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("up", help="start Label Studio and the backend here, with a demo project (Ctrl-C stops)")
    p.add_argument("--data", type=Path, default=Path("finepose-up"), help="where everything is kept (reused next time)")
    p.add_argument("--label-studio", type=Path, default=Path(os.environ.get("FINEPOSE_LS_VENV", ".venv-ls")),
                   help="Label Studio's virtualenv (bash scripts/setup_label_studio.sh makes .venv-ls)")
    p.add_argument("--port", type=int, default=8080, help="Label Studio's port")
    p.add_argument("--backend-port", type=int, default=9090)
    own = p.add_argument_group("your own project instead of the demo")
    own.add_argument("--photos", type=Path)
    own.add_argument("--registry", type=Path)
    own.add_argument("--model")
    own.add_argument("--masks", type=Path)
    own.add_argument("--title")
    p.set_defaults(func=cmd_up)


def cmd_up(args) -> None:
    from ls_backend.editor.links import fill_project_links
    from ls_backend.tools.up import run_up

    def say(line: str) -> None:
        print(line, flush=True)

    run_up(args.data, args.label_studio, args.port, args.backend_port, photos=args.photos, registry=args.registry,
           model=args.model, masks=args.masks, title=args.title, say=say, links=fill_project_links)
