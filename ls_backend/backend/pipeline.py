"""One task -> one refined-pose prediction: the backend's work, independent of HTTP.

Where the initial pose comes from, in order: a smart region in the interactive context
(clicked keypoints are fitted), the newest
human annotation's seven numbers, ``data.pose``, the automatic initial pose from the reference.
Where the reference comes from, in order: the human ``Reference`` brush region,
``data.reference``, the segmentation models. A smart rectangle (a box around one object)
restricts the reference to the object(s) inside it (for segmentation, Mask R-CNN's instance
best inside it); the initial pose is kept, scaled and moved onto that object when its
projection's centre lies outside the box; the message box says what the box did, and when
it changes nothing. Refinement runs on the reference resized to
``FINEPOSE_WORK_WIDTH`` px wide; numbers and masks are given at the photo's own size.

With ``alternatives=True`` (Retrieve Predictions, prelabel) a pose not set by a person is
checked for a far-apart rival (front/back or left/right flipped, and the automatic initial
pose's runner-up; :func:`geometry.ambiguity.far_apart_rival`); one within
:data:`~geometry.ambiguity.MARGIN` IoU becomes a second prediction of the task, and both
predictions say so in the ``finepose_message`` box.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from geometry.ambiguity import MARGIN, far_apart_rival
from geometry.box import box_centre_inside, objects_in_box
from geometry.init_pose import fit_scale_and_position, initial_pose
from geometry.iou import iou
from geometry.masks import resize_mask
from geometry.pose import Pose
from geometry.refine import refine

from ls_backend.backend import media, validation
from ls_backend.backend.download import Deadline
from ls_backend.errors import UnknownModelError
from ls_backend.backend.label_config import PoseConfig
from ls_backend.backend.predictions import filled, pose_numbers, prediction, snapped
from ls_backend.backend.resources import Resources
from ls_backend.backend.smart import (
    SmartRegions, fit_keypoints, guidance, keypoint_results, message_result, rectangle_mask,
)
from ls_backend.backend.tasks import TaskError, TaskInputs, brush_mask, pose_from_numbers, pose_from_task_data, read_task


@dataclass
class Outcome:
    prediction: dict
    initial_source: str
    reference_source: str
    seconds: float
    alternatives: list = field(default_factory=list)  # further predictions (a far-apart hypothesis)

    def stored_order(self) -> list[dict]:
        """The predictions in the order to store them: the alternatives first, the best last.
        Label Studio 1.23's editor builds a new annotation from the task's most recently
        stored prediction (it lists them newest first), so the best one is what the labeling
        stream and the task view open; the others wait one click away above the photo."""
        return [*self.alternatives, self.prediction]


def predict_task(task: dict, config: PoseConfig, resources: Resources, context: dict | None = None,
                 alternatives: bool = False) -> Outcome:
    """Refine the pose of one task and return its prediction (and, with ``alternatives``, a
    far-apart rival's as :attr:`Outcome.alternatives`)."""
    start = time.perf_counter()
    settings = resources.settings
    inputs = read_task(task, config)
    smart = SmartRegions.from_context(context, config)
    if inputs.human_reference is not None:  # a bomb is refused before any work
        validation.brush(inputs.human_reference, inputs.reference_where, settings.max_image_pixels)
    registry = resources.require_registry()
    try:
        entry = registry.entry(inputs.model_id)
    except UnknownModelError as exc:
        if inputs.model_source == "data.model":
            raise
        raise UnknownModelError(f"{exc} (the model came from the {inputs.model_source}: the labeling config's "
                                "model list names it; list the registry's ids there)") from None
    renderer = registry.renderer(inputs.model_id)
    # Media first, outside the refinement slots: a slow server holds a connection, not a slot.
    deadline = Deadline.after(settings.fetch_total_s)  # for all media of this task
    image = media.load_image(inputs.image_url, settings, f"{inputs.where}: data.{config.image_key}", inputs.task_id,
                             deadline, resources.media_cache)
    if inputs.reference_url is not None and inputs.human_reference is None:
        media.fetch(inputs.reference_url, settings, inputs.task_id, deadline, resources.media_cache,
                    f"{inputs.where}: data.reference")  # into the cache; read below
    with resources.refinement_slot():
        return _refine(inputs, smart, image, config, resources, registry, entry, renderer, deadline, start, context,
                       alternatives)


def _refine(inputs, smart, image, config, resources, registry, entry, renderer, deadline, start, context,
            alternatives=False) -> Outcome:
    settings = resources.settings
    height, width = image.shape[:2]
    smart.remember(resources.work_dir / "smart-keypoints", inputs.task_id, settings.smart_memory_seconds)
    clicked = keypoint_results(config, smart.keypoints, width, height) if smart.keypoints else []
    if smart.keypoints and not smart.enough_keypoints:  # keep the clicks on screen, no pose yet
        result = clicked + message_result(config, guidance(len(smart.keypoints)))
        pred = {"result": result, "score": 0.0, "model_version": resources.model_version}
        return Outcome(pred, "keypoints (too few)", "none", time.perf_counter() - start)

    initial, initial_source, note, alternatives = _initial_pose(inputs, smart, registry, width, height, entry)
    box = rectangle_mask(smart.rectangle, width, height) if smart.rectangle is not None else None
    reference, reference_source, box_note = _reference(inputs, resources, image, entry.category, renderer, initial,
                                                       deadline, box)

    work_width = min(settings.work_width, width)
    work_height = max(1, round(height * work_width / width))
    work_reference = resize_mask(reference, work_width, work_height)
    runner_up = []
    if initial is None:
        found = initial_pose(renderer, work_reference, mesh_frame=entry.frame_matrix)
        initial = found.hypotheses[0].pose
        runner_up = [h.pose for h in found.hypotheses[1:2]]  # the far-apart one when there is one
        alternatives = found.alternatives
        initial_source = "automatic"
    elif box is not None and not box_centre_inside(renderer.render(initial), box):
        initial = _moved_onto(renderer, work_reference, initial.rescaled(work_width, work_height))
        initial_source += " (moved into the box)"
    if box is not None:
        note = f"box: {box_note}; initial pose: {initial_source}" + (f" ({note})" if note else "")
    # one path for every start (geometry.refine): the start and its alternatives (the keypoint
    # fit's far-apart rival, the automatic pose's other views); refine rescales to the mask
    result = refine(renderer, work_reference, initial, method=settings.method, alternatives=alternatives)
    refined = snapped(config, result.refined.rescaled(width, height))  # the numbers as the editor shows them
    projection = renderer.render(refined)
    iou_after = iou(projection, reference)  # of the written numbers, at the photo's size
    pred = prediction(config, refined, projection, reference, result.iou_initial, iou_after, resources.model_version,
                      inputs.model_id)
    pred["result"].extend(clicked)
    if context:
        pred["result"].extend(message_result(config, f"{note or initial_source}; refined to IoU {iou_after:.3f}"))
    others = []
    if alternatives and initial_source != "annotation":  # a person's pose is not second-guessed
        rival = far_apart_rival(renderer, work_reference, result.refined, result.iou_refined,
                                extra_starts=runner_up, method=settings.method)
        if rival is not None:
            others = _rival_prediction(config, resources, renderer, reference, rival, pred, refined, iou_after,
                                       inputs.model_id)
    return Outcome(pred, initial_source, reference_source, time.perf_counter() - start, others)


def _rival_prediction(config, resources, renderer, reference, rival, pred, refined, iou_after, model_id) -> list[dict]:
    """The rival as a second prediction (when it still fits within the margin with its numbers
    as written), both predictions saying so in the message box; [] otherwise."""
    height, width = reference.shape
    pose = snapped(config, rival.pose.rescaled(width, height))
    projection = renderer.render(pose)
    rival_iou = iou(projection, reference)
    if rival_iou < iou_after - MARGIN:
        return []
    second = prediction(config, pose, projection, reference, rival.coarse_iou, rival_iou, resources.model_version,
                        model_id)  # before refinement: its start scaled and centred on the reference
    first_az, second_az = _shown_azimuth(config, refined), _shown_azimuth(config, pose)
    pred["result"].extend(message_result(config, (
        f"Front/back check: a far-apart pose fits almost as well (azimuth {second_az:g}, IoU {rival_iou:.3f}; "
        f"this one: azimuth {first_az:g}, IoU {iou_after:.3f}). It is this task's second finepose prediction: "
        "open the task from the Data Manager and click it in the bar above the photo.")))
    second["result"].extend(message_result(config, (
        f"Second hypothesis (front/back check): azimuth {second_az:g}, IoU {rival_iou:.3f}; the first prediction "
        f"has azimuth {first_az:g}, IoU {iou_after:.3f}. Keep whichever matches the photo.")))
    return [second]


def _shown_azimuth(config, pose) -> float:
    """The azimuth as the prediction's number shows it."""
    return config.fit("azimuth", pose_numbers(pose)["azimuth"])


def _initial_pose(inputs: TaskInputs, smart: SmartRegions, registry, width, height,
                  entry) -> tuple[Pose | None, str, str, list[Pose]]:
    """(initial pose or None, where from, a note for the annotator, alternative starts)."""
    frame = entry.frame_matrix
    if smart.keypoints:
        found = fit_keypoints(registry.keypoints(inputs.model_id), smart.keypoints, width, height, frame)
        rival = [found.fit.alternative] if found.fit.alternative is not None else []
        return found.fit.pose, "keypoints", found.message, rival
    if inputs.human_numbers is not None:
        pose = pose_from_numbers(inputs.human_numbers, width, height, entry.frame_matrix, inputs.where)
        return pose, "annotation", "", []
    if inputs.data_pose is not None:
        return pose_from_task_data(inputs.data_pose, width, height, entry, inputs.where), "data.pose", "", []
    return None, "reference", "", []


def reference_mask(inputs: TaskInputs, resources: Resources, image, category, renderer, initial,
                   deadline: Deadline | None = None) -> tuple[np.ndarray, str]:
    """The task's reference mask at the photo's size and where it came from (the order of the
    module docstring); ``initial`` (or None) picks among segmented instances; ``deadline``: the
    task's media time budget (a new one when None)."""
    mask, source, _ = _reference(inputs, resources, image, category, renderer, initial, deadline)
    return mask, source


def _reference(inputs: TaskInputs, resources: Resources, image, category, renderer, initial,
               deadline: Deadline | None = None, box=None) -> tuple[np.ndarray, str, str]:
    """(reference mask at the photo's size, where from, what the box did: "" without one).

    With a ``box`` (the smart rectangle's pixels): a given mask keeps its objects mostly
    inside the box (:func:`geometry.box.objects_in_box`); segmentation takes the Mask R-CNN
    instance best inside the box (:func:`ls_backend.segmentation.combine.combine_masks`)."""
    height, width = image.shape[:2]
    settings = resources.settings
    given, source = None, ""
    if inputs.human_reference is not None:  # painted, or the prediction's outline: filled
        mask = filled(brush_mask(inputs.human_reference, settings.max_image_pixels, inputs.reference_where))
        if mask.any():
            given, source = resize_mask(mask, width, height), "annotation"
    if given is None and inputs.reference_url is not None:
        given = media.load_reference(inputs.reference_url, settings, f"{inputs.where}: data.reference", (width, height),
                                     inputs.task_id, deadline, resources.media_cache)
        source = "data.reference"
    if given is not None:
        if box is None:
            return given, source, ""
        pick = objects_in_box(given, box)
        if not pick.mask.any():
            raise TaskError(f"the rectangle holds none of the reference mask ({source}): draw the box around the object")
        return pick.mask, source, f"{pick.describe()} (reference from {source})"
    projection = renderer.render(initial) if initial is not None else None
    found = resources.segmenter().segment(image, category, projection, box_mask=box)
    if not found.mask.any():
        where = " inside the box" if box is not None else ""
        raise TaskError(f"segmentation found no {category}{where}: give a reference mask")
    source = f"segmentation ({found.source})"
    if box is None:
        return found.mask, source, ""
    if found.instance_index is not None:
        said = f"the box picks Mask R-CNN's instance {found.instance_index + 1} of {found.instance_count}"
        if found.instance_count == 1:
            said += " (the only one: the box changes nothing here)"
        return found.mask, source, said
    return found.mask, source, "no Mask R-CNN instance touches the box: DeepLab's objects inside it"


def _moved_onto(renderer, mask, pose):
    """``pose`` scaled and centred on ``mask`` (the box's object), its angles kept."""
    from geometry.iou import Reference

    ys, xs = np.nonzero(mask)
    moved, _ = fit_scale_and_position(renderer, Reference(mask), pose, np.array([xs.mean(), ys.mean()]))
    return moved
