"""``finepose editor``: pose-editor links for a Label Studio project.

- ``finepose editor links --project ID [--url URL]``: a fresh signed link in the ``editor``
  field of every task that needs one, and the project's link ("the next task without an
  annotation") in its labeling instructions; prints the counts and the project link.
- ``finepose editor link --task ID [--url URL]``: one task's link.

``--url``: the backend as annotators' browsers reach it (default ``FINEPOSE_EDITOR_URL``).
"""

from __future__ import annotations

from ls_backend.cli.output import print_json


def _links(args) -> None:
    from ls_backend.resources import Resources
    from ls_backend.editor.links import fill_project_links

    resources = Resources.shared()
    print_json(fill_project_links(resources.client(), args.project, resources.settings, args.url))


def _link(args) -> None:
    from ls_backend.studio import client as labelstudio
    from ls_backend.resources import Resources
    from ls_backend.editor.links import LinkSigner, task_url
    from ls_backend.errors import ConfigError

    resources = Resources.shared()
    base = args.url or resources.settings.editor_url
    if not base:
        raise ConfigError("editor links need FINEPOSE_EDITOR_URL (or --url): the backend's URL as browsers reach it")
    task = labelstudio.get_task(resources.client(), args.task)
    print_json({"task": args.task, "link": task_url(base, LinkSigner(resources.settings), task["project"], args.task)})


def register(sub) -> None:
    group = sub.add_parser("editor", help="pose-editor links for Label Studio tasks").add_subparsers(dest="editor_command", required=True)
    p = group.add_parser("links", help="write editor links into every task of a project (and its instructions)")
    p.add_argument("--project", type=int, required=True, help="Label Studio project id")
    p.add_argument("--url", help="the backend's URL as browsers reach it (default FINEPOSE_EDITOR_URL)")
    p.set_defaults(func=_links)
    p = group.add_parser("link", help="print one task's editor link")
    p.add_argument("--task", type=int, required=True, help="Label Studio task id")
    p.add_argument("--url", help="the backend's URL as browsers reach it (default FINEPOSE_EDITOR_URL)")
    p.set_defaults(func=_link)
