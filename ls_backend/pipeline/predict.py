"""One task -> one refined-pose prediction: the backend's, the webhook's and ``prelabel``'s work,
independent of HTTP.

The start pose, in order: a smart region of the interactive context (clicked keypoints are
fitted), else :func:`ls_backend.studio.resolve.resolve_task`'s rule (the newest annotation's
seven numbers, ``data.pose``, else the automatic pose from the reference). The reference: the
same rule (the annotation's ``Reference`` brush, ``data.reference``, else segmentation,
:mod:`.reference`). A smart rectangle (a box around one object) restricts the reference to
the object(s) inside it; the start is kept, scaled and moved onto that object when its
projection's centre lies outside the box; the message box says what the box did. Refinement
runs on the reference at the work size (:func:`geometry.masks.work_size`,
``FINEPOSE_WORK_WIDTH``); numbers and masks are given at the photo's own size.

A start passed over (an annotation holding an out-of-range number, say) is said in
:attr:`Outcome.notes` and in the message box: the task is predicted from the next start.

With :attr:`PredictRequest.front_back_check` (Retrieve Predictions, prelabel) a pose not set
by a person is checked for a far-apart rival (front/back or left/right flipped, and the
automatic initial pose's runner-up; :func:`geometry.ambiguity.far_apart_rival`); one within
:data:`~geometry.ambiguity.MARGIN` IoU becomes a second prediction of the task
(:attr:`Outcome.rivals`), and both predictions say so in the ``finepose_message`` box.
Interactive calls (a person working on the task) never run it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np

from geometry.ambiguity import MARGIN, far_apart_rival
from geometry.box import box_centre_inside
from geometry.init_pose import fit_scale_and_position, initial_pose
from geometry.iou import iou
from geometry.masks import resize_mask, work_size
from geometry.pose import Pose
from geometry.refine import refine

from ls_backend.errors import UnknownModelError
from ls_backend.pipeline.reference import reference_mask
from ls_backend.pipeline.smart import (
    SmartRegions, fit_keypoints, guidance, keypoint_results, message_result, rectangle_mask, require_keypoints,
)
from ls_backend.process import SharedRuns
from ls_backend.resources import Resources
from ls_backend.segmentation.combine import Detections
from ls_backend.studio import media, validation
from ls_backend.studio.download import Deadline
from ls_backend.studio.label_config import PoseConfig
from ls_backend.studio.predictions import consistent_annotation, pose_numbers, prediction, snapped
from ls_backend.studio.resolve import Resolved, resolve_task
from ls_backend.studio.taskdata import FINEPOSE_FIELDS
from ls_backend.studio.tasks import TaskInputs, newest_annotation, read_task


@dataclass(frozen=True)
class PredictRequest:
    """What to predict: a Label Studio task under a labeling config, with Label Studio's
    interactive ``context`` (smart regions; None for Retrieve Predictions, prelabel and the
    webhook), whether to run the front/back check (see the module docstring) and whether to
    check that the newest annotation's Projection and IoU are those of its own numbers
    (:attr:`Outcome.annotation_fix`). ``detections``: the photo's segmentation models' output
    computed elsewhere (``finepose prelabel``'s segmentation stage); None: the models run
    here when the task needs them."""

    task: dict
    config: PoseConfig
    context: dict | None = None
    front_back_check: bool = False
    reconcile_annotation: bool = False  # the webhook: say how to make the annotation show its own numbers
    detections: Detections | None = None


@dataclass
class Outcome:
    prediction: dict
    start_source: str  # where the start came from ("annotation", "data.pose", "keypoints", "automatic", ...)
    reference_source: str
    seconds: float
    rivals: list[dict] = field(default_factory=list)  # further predictions: a far-apart hypothesis
    notes: str = ""  # starts passed over and why ("" when none)
    annotation_fix: list | None = None  # the annotation's result made consistent; None: it is

    def stored_order(self) -> list[dict]:
        """The predictions in the order to store them: the rivals first, the best last.
        Label Studio 1.23's editor builds a new annotation from the task's most recently
        stored prediction (it lists them newest first), so the best one is what the labeling
        stream and the task view open; the others wait one click away above the photo."""
        return [*self.rivals, self.prediction]


@dataclass
class _Work:
    """One task's state between the steps of :func:`predict_task`."""

    request: PredictRequest
    inputs: TaskInputs
    smart: SmartRegions
    image: np.ndarray
    entry: object  # the registry's ModelEntry
    renderer: object  # its SilhouetteRenderer
    model_points: dict  # its CAD keypoints (read only for smart keypoint clicks)
    deadline: Deadline
    started: float

    @property
    def config(self) -> PoseConfig:
        return self.request.config


def request_key(request: PredictRequest, model_version: str) -> str:
    """What makes two requests the same prediction: the task's id, data (less finepose's own
    fields) and annotations, and every other field of the request, and the backend's
    ``model_version``."""
    task = request.task if isinstance(request.task, dict) else {"task": request.task}
    data = task.get("data")
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key not in FINEPOSE_FIELDS}
    text = json.dumps([task.get("id"), data, task.get("annotations"), request.config, request.context,
                       request.front_back_check, request.reconcile_annotation, model_version], sort_keys=True,
                      default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def predict_shared(request: PredictRequest, resources: Resources) -> tuple[Outcome, str]:
    """:func:`predict_task`, shared by the calls with the same :func:`request_key` in this
    process, and how this call got it (:class:`~ls_backend.process.SharedRuns`): concurrent
    calls wait for one refinement (``"joined"``), repeated ones within
    :data:`~ls_backend.resources.SHARED_PREDICTION_S` get its answer (``"kept"``).
    Interactive calls are never shared: the clicks remembered so far are inputs that the
    request does not show; nor are calls given their detections (prelabel's, not keyed)."""
    if request.context or request.detections is not None:
        return predict_task(request, resources), SharedRuns.RAN
    key = request_key(request, resources.model_version)
    return resources.shared_predictions.run(key, lambda: predict_task(request, resources))


def predict_task(request: PredictRequest, resources: Resources) -> Outcome:
    """Refine the pose of one task and return its prediction (and, with the front/back check,
    a far-apart rival's as :attr:`Outcome.rivals`)."""
    started = time.perf_counter()
    settings = resources.settings
    config = request.config
    inputs = read_task(request.task, config)
    smart = SmartRegions.from_context(request.context, config)
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
    model_points = registry.keypoints(inputs.model_id) if smart.keypoints else {}
    if smart.keypoints:  # a model without CAD keypoints is said on the first click, not the fourth
        require_keypoints(model_points)
    # Media first, outside the refinement slots: a slow server holds a connection, not a slot.
    deadline = Deadline.after(settings.fetch_total_s)  # for all media of this task
    image = media.load_image(inputs.image_url, settings, f"{inputs.where}: data.{config.image_key}", inputs.task_id,
                             deadline, resources.media_cache)
    if inputs.reference_url is not None and inputs.human_reference is None:
        media.fetch(inputs.reference_url, settings, inputs.task_id, deadline, resources.media_cache,
                    f"{inputs.where}: data.reference")  # into the cache; read below
    work = _Work(request, inputs, smart, image, entry, renderer, model_points, deadline, started)
    with resources.refinement_slot():
        return _refine(work, resources)


def _refine(work: _Work, resources: Resources) -> Outcome:
    settings = resources.settings
    config, inputs, smart, renderer = work.config, work.inputs, work.smart, work.renderer
    height, width = work.image.shape[:2]
    smart.remember(resources.work_dir / "smart-keypoints", inputs.task_id, settings.smart_memory_seconds)
    clicked = keypoint_results(config, smart.keypoints, width, height) if smart.keypoints else []
    if smart.keypoints and not smart.enough_keypoints:  # keep the clicks on screen, no pose yet
        result = clicked + message_result(config, guidance(len(smart.keypoints)))
        pred = {"result": result, "score": 0.0, "model_version": resources.model_version}
        return Outcome(pred, "keypoints (too few)", "none", time.perf_counter() - work.started)

    resolved = resolve_task(work.request.task, inputs, config, work.entry, width, height)
    start, start_source, by_a_person, extra_starts, note = _start(work, resolved, width, height)
    box = rectangle_mask(smart.rectangle, width, height) if smart.rectangle is not None else None
    reference = reference_mask(resolved.reference, inputs, resources, work.image, work.entry.category,
                               renderer.render(start) if start is not None else None, work.deadline, box,
                               work.request.detections)

    work_width, work_height = work_size(width, height, settings.work_width)
    work_reference = resize_mask(reference.mask, work_width, work_height)
    runner_up = []
    if start is None:
        found = initial_pose(renderer, work_reference, mesh_frame=work.entry.frame_matrix)
        start = found.hypotheses[0].pose
        runner_up = [h.pose for h in found.hypotheses[1:2]]  # the far-apart one when there is one
        extra_starts = found.extra_starts
        start_source = "automatic"
    elif box is not None and not box_centre_inside(renderer.render(start), box):
        start = _moved_onto(renderer, work_reference, start.rescaled(work_width, work_height))
        start_source += " (moved into the box)"
    if box is not None:
        note = f"box: {reference.box_note}; initial pose: {start_source}" + (f" ({note})" if note else "")
    # one path for every start (geometry.refine): the start and its extra starts (the keypoint
    # fit's far-apart rival, the automatic pose's other views); refine rescales to the mask
    result = refine(renderer, work_reference, start, method=settings.method, extra_starts=extra_starts)
    refined = snapped(config, result.refined.rescaled(width, height))  # the numbers as the editor shows them
    projection = renderer.render(refined)
    iou_after = iou(projection, reference.mask)  # of the written numbers, at the photo's size
    pred = prediction(config, refined, projection, reference.mask, result.iou_initial, iou_after,
                      resources.model_version, inputs.model_id)
    pred["result"].extend(clicked)
    passed_over = "" if smart.keypoints else resolved.note()  # clicked keypoints came before any task start
    messages = []
    if work.request.context or passed_over:
        said = "; ".join(part for part in (passed_over, note) if part) or start_source
        messages.append(f"{said}; refined to IoU {iou_after:.3f}")
    rivals = []
    if work.request.front_back_check and not by_a_person:  # a person's pose is not second-guessed
        rival = far_apart_rival(renderer, work_reference, result.refined, result.iou_refined,
                                extra_starts=runner_up, method=settings.method)
        if rival is not None:
            rivals, said = _rival_prediction(config, resources, renderer, reference.mask, rival, refined, iou_after,
                                             inputs.model_id)
            messages.extend([said] if said else [])
    if messages:  # one message box per prediction
        pred["result"].extend(message_result(config, " ".join(messages)))
    fix = None
    if work.request.reconcile_annotation and resolved.start is not None and resolved.start.by_a_person:
        shown = renderer.render(resolved.start.pose)  # the annotation's own numbers, at the photo's size
        annotation = newest_annotation(work.request.task.get("annotations") or [])
        fix = consistent_annotation(config, annotation.get("result") or [], shown, iou(shown, reference.mask),
                                    settings.max_image_pixels)
    return Outcome(pred, start_source, reference.source, time.perf_counter() - work.started, rivals, passed_over, fix)


def _start(work: _Work, resolved: Resolved, width: int,
           height: int) -> tuple[Pose | None, str, bool, list[Pose], str]:
    """(start pose or None for the automatic one, where from, set by a person, extra starts,
    a note for the annotator)."""
    if work.smart.keypoints:
        found = fit_keypoints(work.model_points, work.smart.keypoints, width, height, work.entry.frame_matrix)
        rival = [found.fit.alternative] if found.fit.alternative is not None else []
        return found.fit.pose, "keypoints", True, rival, found.message
    if resolved.start is None:
        return None, "reference", False, [], ""
    return resolved.start.pose, resolved.start.source, resolved.start.by_a_person, [], ""


def _rival_prediction(config, resources, renderer, reference, rival, refined, iou_after,
                      model_id) -> tuple[list[dict], str]:
    """The rival as a second prediction (when it still fits within the margin with its numbers
    as written), saying so in its message box, and what the first prediction's message box
    says of it; ([], "") otherwise."""
    height, width = reference.shape
    pose = snapped(config, rival.pose.rescaled(width, height))
    projection = renderer.render(pose)
    rival_iou = iou(projection, reference)
    if rival_iou < iou_after - MARGIN:
        return [], ""
    second = prediction(config, pose, projection, reference, rival.coarse_iou, rival_iou, resources.model_version,
                        model_id)  # before refinement: its start scaled and centred on the reference
    first_az, second_az = _shown_azimuth(config, refined), _shown_azimuth(config, pose)
    second["result"].extend(message_result(config, (
        f"Second hypothesis (front/back check): azimuth {second_az:g}, IoU {rival_iou:.3f}; the first prediction "
        f"has azimuth {first_az:g}, IoU {iou_after:.3f}. Keep whichever matches the photo.")))
    return [second], (
        f"Front/back check: a far-apart pose fits almost as well (azimuth {second_az:g}, IoU {rival_iou:.3f}; "
        f"this one: azimuth {first_az:g}, IoU {iou_after:.3f}). It is this task's second finepose prediction: "
        "click it in the bar of predictions above the photo (the labeling stream hides that bar: open the task "
        "from the Data Manager's table).")


def _shown_azimuth(config, pose) -> float:
    """The azimuth as the prediction's number shows it."""
    return config.fit("azimuth", pose_numbers(pose)["azimuth"])


def _moved_onto(renderer, mask, pose):
    """``pose`` scaled and centred on ``mask`` (the box's object), its angles kept."""
    from geometry.iou import Reference

    ys, xs = np.nonzero(mask)
    moved, _ = fit_scale_and_position(renderer, Reference(mask), pose, np.array([xs.mean(), ys.mean()]))
    return moved
