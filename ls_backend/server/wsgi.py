"""WSGI entry point: ``gunicorn 'ls_backend.server.wsgi:app'`` (``finepose serve`` loads it).

Settings come from the environment through :class:`ls_backend.settings.Settings`; with
``FINEPOSE_PRELOAD_MESHES=1`` every registry mesh is loaded when the process starts instead of
on first use; a registry that cannot be loaded is logged, and ``/health`` answers 503 naming
it until it is fixed (the server does not exit, so a container does not restart in a loop).
"""

import logging

from geometry.errors import GeometryError
from ls_backend.errors import FineposeError
from ls_backend.server.app import create_app
from ls_backend.resources import Resources

_resources = Resources.shared()
logging.basicConfig(level=_resources.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
if _resources.settings.preload_meshes:
    try:
        _resources.warm_up()
    except (FineposeError, GeometryError) as exc:  # keep serving: /health answers 503 naming it until fixed
        logging.getLogger(__name__).error("meshes not preloaded: %s", exc)
app = create_app(_resources)
