"""``finepose serve``: the ML backend under gunicorn (or Flask's development server).

Gunicorn's worker timeout and log level come from :class:`ls_backend.settings.Settings`
(``FINEPOSE_TIMEOUT``, ``LOG_LEVEL``), so the same variables work in Docker and by hand.
"""

from __future__ import annotations

from ls_backend.settings import Settings


def serve(host: str, port: int, workers: int, threads: int, dev: bool = False) -> None:
    settings = Settings.from_env()  # fails here, naming the variable, before any worker starts
    if dev:
        from ls_backend.backend.wsgi import app

        app.run(host=host, port=port, threaded=True)
        return
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", settings.timeout_s)
            self.cfg.set("loglevel", settings.log_level.lower())

        def load(self):
            from ls_backend.backend.wsgi import app

            return app

    Gunicorn().run()
