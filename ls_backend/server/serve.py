"""``finepose serve``: the ML backend under gunicorn (or Flask's development server).

Gunicorn's worker timeout and log level come from :class:`ls_backend.settings.Settings`
(``FINEPOSE_TIMEOUT``, ``LOG_LEVEL``), so the same variables work in Docker and by hand.
Settings are checked before anything starts (a half-configured basic auth or a malformed
number stops it with a message naming the variable), and where the backend writes is decided
and said: ``MODEL_DIR``, or a temporary folder when that is not writable. Each worker process
refines ``threads`` tasks at once (``FINEPOSE_THREADS``) and holds :data:`SPARE_THREADS` more
connection threads, so ``/health`` answers while every refinement slot is busy and media
downloads wait on slow servers outside the slots.
"""

from __future__ import annotations

import logging
import os

from ls_backend.settings import Settings

SPARE_THREADS = 32


def serve(host: str, port: int, workers: int, threads: int, dev: bool = False) -> None:
    from ls_backend.studio.media_cache import work_dir

    os.environ["FINEPOSE_THREADS"] = str(threads)  # the workers' Settings read it
    settings = Settings.from_env()  # fails here, naming the variable, before any worker starts
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder, persistent = work_dir(settings.model_dir)  # a warning says so when MODEL_DIR is not writable
    if persistent:
        logging.getLogger(__name__).info("media cache and smart-keypoint memory in MODEL_DIR %s", folder)
    if dev:
        from ls_backend.server.wsgi import app

        app.run(host=host, port=port, threaded=True)
        return
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads + SPARE_THREADS)
            self.cfg.set("timeout", settings.timeout_s)
            self.cfg.set("loglevel", settings.log_level.lower())

        def load(self):
            from ls_backend.server.wsgi import app

            return app

    Gunicorn().run()
