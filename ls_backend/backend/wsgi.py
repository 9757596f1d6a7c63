"""WSGI entry point: ``gunicorn 'ls_backend.backend.wsgi:app'`` (as the docker image runs it).

Settings come from the environment (see :mod:`ls_backend.settings`); with
``FINEPOSE_PRELOAD_MESHES=1`` every registry mesh is loaded when the process starts instead of
on first use.
"""

import logging
import os

from ls_backend.backend.app import create_app
from ls_backend.backend.resources import Resources

logging.basicConfig(level=Resources.shared().settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
if os.environ.get("FINEPOSE_PRELOAD_MESHES") == "1":
    Resources.shared().warm_up()
app = create_app()
