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
    p.add_argument("--backend-port", type=int, default=9090, help="the backend's port")
    elsewhere = p.add_argument_group(
        "a Label Studio started elsewhere (docker compose): its user comes from LABEL_STUDIO_USERNAME and "
        "LABEL_STUDIO_PASSWORD (and LABEL_STUDIO_API_KEY where that user has a token already), and DATA/files must "
        "be its local-files root")
    elsewhere.add_argument("--label-studio-url", help="use the Label Studio at this URL instead of starting one")
    elsewhere.add_argument("--backend-host", default="127.0.0.1", help="the address the backend listens on")
    elsewhere.add_argument("--backend-url",
                           help="where Label Studio reaches the backend (default http://127.0.0.1:PORT)")
    elsewhere.add_argument("--editor-url", help="where browsers reach the pose editor (default: --backend-url)")
    own = p.add_argument_group("your own project instead of the demo")
    own.add_argument("--photos", type=Path, help="a folder of photos")
    own.add_argument("--registry", type=Path, help="the registry JSON (finepose registry add writes one)")
    own.add_argument("--model", help="the registry's model id the photos show")
    own.add_argument("--masks", type=Path, help="reference masks, matched to the photos by file stem")
    own.add_argument("--title", help="the project's title")
    p.set_defaults(func=cmd_up)


def cmd_up(args) -> None:
    from ls_backend.editor.links import fill_project_links
    from ls_backend.tools.up import run_up

    def say(line: str) -> None:
        print(line, flush=True)

    login = (os.environ.get("LABEL_STUDIO_USERNAME", ""), os.environ.get("LABEL_STUDIO_PASSWORD", ""))
    run_up(args.data, args.label_studio, args.port, args.backend_port, photos=args.photos, registry=args.registry,
           model=args.model, masks=args.masks, title=args.title, say=say, links=fill_project_links,
           label_studio_url=args.label_studio_url, login=login if args.label_studio_url else None,
           api_key=os.environ.get("LABEL_STUDIO_API_KEY") or None,
           backend_host=args.backend_host, backend_url=args.backend_url, editor_url=args.editor_url)
