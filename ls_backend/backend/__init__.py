"""The Label Studio ML backend: its HTTP protocol as a blueprint (:mod:`.app`) and the model
class (:mod:`.model`). The work itself is :mod:`ls_backend.pipeline`'s, Label Studio's
vocabulary :mod:`ls_backend.studio`'s; the WSGI app that mounts this beside the pose editor is
:mod:`ls_backend.server.app`. Nothing else imports this package."""
