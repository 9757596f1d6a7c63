"""WSGI entry point: ``gunicorn 'ls_backend.server.wsgi:app'`` (``finepose serve`` loads it).

Settings come from the environment through :class:`ls_backend.settings.Settings`; with
``FINEPOSE_PRELOAD_MESHES=1`` every registry mesh is loaded when the process starts instead of
on first use.
"""

import logging

from ls_backend.server.app import create_app
from ls_backend.resources import Resources

_resources = Resources.shared()
logging.basicConfig(level=_resources.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
if _resources.settings.preload_meshes:
    _resources.warm_up()
app = create_app(_resources)
