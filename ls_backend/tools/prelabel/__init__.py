"""``finepose prelabel``: a whole Label Studio project refined into predictions by one staged
pipeline, on local processes or on Ray (:mod:`.run`)."""

from ls_backend.tools.prelabel.plan import plan, reason_group
from ls_backend.tools.prelabel.run import prelabel

__all__ = ["plan", "prelabel", "reason_group"]
