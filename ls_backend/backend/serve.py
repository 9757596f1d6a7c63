"""``finepose serve``: the ML backend under gunicorn (or Flask's development server)."""

from __future__ import annotations

import os


def serve(host: str, port: int, workers: int, threads: int, dev: bool = False) -> None:
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
            self.cfg.set("timeout", int(os.environ.get("FINEPOSE_TIMEOUT", "300")))
            self.cfg.set("loglevel", os.environ.get("LOG_LEVEL", "info").lower())

        def load(self):
            from ls_backend.backend.wsgi import app

            return app

    Gunicorn().run()
