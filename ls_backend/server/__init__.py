"""The composition root: one WSGI app mounting the ML backend (:mod:`ls_backend.backend`) and
the pose editor (:mod:`ls_backend.editor`), which never import each other (:mod:`.app`), and
its entry points (:mod:`.wsgi` for gunicorn, :mod:`.serve` for ``finepose serve``)."""
