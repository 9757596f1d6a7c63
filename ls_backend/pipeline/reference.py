"""The task's reference mask at the photo's size, from the choice :mod:`ls_backend.studio.resolve`
made: a brush (filled), ``data.reference`` (fetched by the media rules), or segmentation
(Mask R-CNN + DeepLabV3, :mod:`ls_backend.segmentation`).

With a ``box`` (the smart rectangle's pixels): a given mask keeps its objects mostly inside
the box (:func:`geometry.box.objects_in_box`); segmentation takes the Mask R-CNN instance best
inside the box (:func:`ls_backend.segmentation.combine.combine_masks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.box import objects_in_box

from ls_backend.errors import TaskError
from ls_backend.resources import Resources
from ls_backend.segmentation.combine import Detections
from ls_backend.studio import media
from ls_backend.studio.download import Deadline
from ls_backend.studio.resolve import ReferenceChoice, brush_reference
from ls_backend.studio.tasks import TaskInputs


@dataclass(frozen=True)
class Reference:
    mask: np.ndarray  # bool, the photo's size
    source: str  # "annotation", "data.reference", "prediction", "segmentation (...)"
    box_note: str = ""  # what the box did ("" without one)


def reference_mask(choice: ReferenceChoice, inputs: TaskInputs, resources: Resources, image: np.ndarray,
                   category: str, projection: np.ndarray | None = None, deadline: Deadline | None = None,
                   box: np.ndarray | None = None, detections: Detections | None = None) -> Reference:
    """The reference of ``choice`` for the photo ``image``; ``projection`` (the start pose's
    silhouette, or None) picks among segmented instances; ``deadline``: the task's media time
    budget (a new one when None); ``detections``: the photo's segmentation models' output when
    it was computed elsewhere (prelabel's segmentation stage), else the models run here. An
    empty brush falls through to the next source."""
    height, width = image.shape[:2]
    settings = resources.settings
    given = None
    if choice.brush is not None:
        given = brush_reference(choice, width, height, settings.max_image_pixels)
    elif choice.url is not None:
        given = media.load_reference(choice.url, settings, choice.where, (width, height), inputs.task_id, deadline,
                                     resources.media_cache)
    if given is not None:
        if box is None:
            return Reference(given, choice.source)
        pick = objects_in_box(given, box)
        if not pick.mask.any():
            raise TaskError(f"the rectangle holds none of the reference mask ({choice.source}): "
                            "draw the box around the object")
        return Reference(pick.mask, choice.source, f"{pick.describe()} (reference from {choice.source})")
    if detections is not None:
        found = detections.reference(projection, box)
    else:
        found = resources.segmenter().segment(image, category, projection, box_mask=box)
    if not found.mask.any():
        where = " inside the box" if box is not None else ""
        raise TaskError(f"segmentation found no {category}{where}: give a reference mask")
    source = f"segmentation ({found.source})"
    if box is None:
        return Reference(found.mask, source)
    if found.instance_index is not None:
        said = f"the box picks Mask R-CNN's instance {found.instance_index + 1} of {found.instance_count}"
        if found.instance_count == 1:
            said += " (the only one: the box changes nothing here)"
        return Reference(found.mask, source, said)
    return Reference(found.mask, source, "no Mask R-CNN instance touches the box: DeepLab's objects inside it")
