"""The pose editor: the paper's real-time 7-parameter screen in the browser.

A page served by the backend (``/editor/<task id>?t=<signed token>``) draws the registry's
CAD model over the task's photo with WebGL, with finepose's exact camera, and lets a person
move, turn, zoom and refine it, then save the pose to Label Studio as an annotation. The
browser talks only to this backend, which holds the Label Studio credentials. See
:mod:`.blueprint` (routes), :mod:`.links` (signed links), :mod:`.task` (what a task gives
the page), :mod:`.meshdata` (the mesh payload) and ``static/`` (the page; three.js vendored).
"""

from ls_backend.editor.blueprint import create_editor_blueprint
from ls_backend.editor.links import renew_links_later

__all__ = ["create_editor_blueprint", "renew_links_later"]
