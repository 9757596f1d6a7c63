"""The Label Studio ML backend: HTTP protocol (:mod:`.app`), the model class (:mod:`.model`),
one task -> one prediction (:mod:`.pipeline`), task reading and prediction writing
(:mod:`.tasks`, :mod:`.predictions`), the label config (:mod:`.label_config`), interactive
regions (:mod:`.smart`), the media policy (:mod:`.media`), process-wide state
(:mod:`.resources`) and the server entry points (:mod:`.wsgi`, :mod:`.serve`).

Nothing here implements an offline tool; the tools (:mod:`ls_backend.tools`) call
:func:`.pipeline.predict_task` for their per-task work.
"""
