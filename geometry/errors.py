"""finepose's geometry errors: one base class for input the geometry cannot use.

Every error raised by :mod:`geometry` for bad input (a NaN pose, an unreadable mesh, an empty
mask, a frame that cannot be converted) is a :class:`GeometryError`, which is a
``ValueError``. Callers at the edges (the backend, the CLI) map it to their own answer (HTTP
422, exit status 2) without knowing each subclass.
"""


class GeometryError(ValueError):
    """Input the geometry cannot use; the message names the field or file and the reason."""
