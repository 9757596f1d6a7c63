"""What finepose accepts, checked at the edge: the one description of valid input.

Every request body passes here before any work is done, and every refusal names the field (in
the caller's terms: ``tasks[0].data.pose.focal``, ``annotations[1].result[3].value.rle``) and
the reason, as a 4xx: :class:`~ls_backend.errors.BadRequest` (400) for the body itself,
:class:`~ls_backend.errors.TaskError` (422) for a task, annotation, context or webhook field.

- Bodies: UTF-8 JSON objects, at most ``FINEPOSE_MAX_REQUEST_BYTES`` (413), nested at most
  :data:`MAX_DEPTH` deep.
- ``/predict``: ``tasks`` a non-empty list of objects, ``label_config`` a string, ``params`` an
  object whose ``context`` is null or ``{"result": [regions]}``.
- A task: ``id`` an integer in [0, 2^53] or absent; ``data`` an object with the image URL
  (string), ``model`` (string, at most :data:`MAX_ID_CHARS`), optional ``pose`` (object) and
  ``reference`` (string); ``annotations`` a list of objects, each with a ``result`` list of
  objects whose ``type`` and ``from_name`` are strings and ``value`` an object.
- A pose (typed numbers, ``data.pose`` in any convention, keypoints fitted): every number finite
  and inside :data:`POSE_RANGES` (physical: a camera that can image the object).
- A brush region: ``original_width``/``original_height`` integers of at most
  ``FINEPOSE_MAX_IMAGE_PIXELS`` pixels together, ``value.rle`` a list of bytes whose header
  counts exactly width x height x 4 values: checked before anything is allocated.
- Smart regions: ``x``, ``y``, ``width``, ``height`` numbers in [-100, 200] percent, labels
  strings of at most :data:`MAX_LABEL_CHARS`.
- ``/webhook``: ``action`` a string; for annotation events ``task`` (with an integer ``id``),
  ``annotation`` (with a non-empty ``result``) and ``project`` objects.
"""

from __future__ import annotations

import json
import math
from numbers import Real

from ls_backend.errors import BadRequest, TaskError

MAX_DEPTH = 64  # JSON nesting (Label Studio's own bodies nest under 10)
MAX_TASK_ID = 2**53  # JavaScript's safe integers: Label Studio's ids
MAX_ID_CHARS = 256  # model ids, event names
MAX_LABEL_CHARS = 200  # keypoint names
MAX_IMAGE_SIDE = 100_000  # px, for image sizes a task states (the photo's own are checked on reading)
PERCENT_RANGE = (-100.0, 200.0)  # region coordinates (percent of the image), a region may overhang


def _pose_ranges(width: float, height: float) -> dict[str, tuple[float, float, str]]:
    return {
        "azimuth": (-3600.0, 3600.0, "degrees"),
        "elevation": (-3600.0, 3600.0, "degrees"),
        "theta": (-3600.0, 3600.0, "degrees"),
        "distance": (1e-4, 1e6, "model units"),
        "focal": (1.0, 1e6, "px"),
        "u": (-10.0 * width, 11.0 * width, "px (within ten image widths of the photo)"),
        "v": (-10.0 * height, 11.0 * height, "px (within ten image heights of the photo)"),
    }


#: The physical range of each pose number for a photo of the default size (u, v scale with it).
POSE_RANGES = _pose_ranges(1000, 1000)
#: The widest range of each pose number, whatever the photo (u, v at the largest image side):
#: the templates' ``Number`` min/max lie inside these (tests/studio/test_templates.py).
POSE_LIMITS = {name: (low, high) for name, (low, high, _) in _pose_ranges(MAX_IMAGE_SIDE, MAX_IMAGE_SIDE).items()}


# -- request bodies -----------------------------------------------------------------------------
def parse_json(raw: bytes, what: str = "request body") -> dict:
    """The JSON object in ``raw``; :class:`BadRequest` saying exactly why not."""
    if not raw:
        raise BadRequest(f"{what} is empty: send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{what} is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise BadRequest(f"{what} is JSON nested too deeply (the limit is {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # e.g. Python's limit on digits of an integer
        if "digits" in str(exc):
            raise BadRequest(f"{what} holds an integer with more than 4300 digits") from None
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None
    check_depth(data, what)
    if not isinstance(data, dict):
        raise BadRequest(f"{what} must be a JSON object, got {_type(data)}")
    return data


def check_depth(data, what: str = "request body") -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"{what} is JSON nested over {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values() if isinstance(item, (dict, list)))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value if isinstance(item, (dict, list)))


def predict_body(data: dict) -> tuple[list, object, dict | None]:
    """``(tasks, label_config, context)`` of a ``/predict`` body (each task is checked later, on
    its own, so one bad task does not sink a batch)."""
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise TaskError(f"'tasks' must be a non-empty list of tasks, got {_type(tasks)}")
    params = data.get("params")
    if params is not None and not isinstance(params, dict):
        raise TaskError(f"'params' must be an object, got {_type(params)}")
    context = (params or {}).get("context")
    return tasks, data.get("label_config"), context_regions(context)


def setup_body(data: dict) -> tuple[object, object]:
    schema = data.get("schema")
    if schema is not None and not isinstance(schema, str):
        raise TaskError(f"'schema' must be the labeling config (a string), got {_type(schema)}")
    return data.get("project"), schema


# -- tasks and annotations ----------------------------------------------------------------------
def task_id(value, where: str = "task") -> int | None:
    """A task's ``id``: None, or an integer in [0, 2^53] (bools, floats, strings refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TASK_ID:
        raise TaskError(f"{where}.id must be a whole number between 0 and 2^53, got {_short(value)}")
    return value


def task(value, image_key: str, where: str = "task") -> dict:
    """The checked task: ``{"id", "image", "model", "pose", "reference", "annotations"}``."""
    if not isinstance(value, dict):
        raise TaskError(f"{where} must be an object with a 'data' object, got {_type(value)}")
    identity = task_id(value.get("id"), where)
    if identity is not None:
        where = f"task {identity}"
    data = value.get("data")
    if not isinstance(data, dict):
        raise TaskError(f"{where}: 'data' must be an object, got {_type(data)}")
    image = data.get(image_key)
    if not isinstance(image, str) or not image.strip():
        raise TaskError(f"{where}: data.{image_key} must be the image URL (a non-empty string), got {_short(image)}")
    model = data.get("model")  # None: the labeling config's model list decides (tasks.task_model)
    if model is not None:
        model_id(model, f"{where}: data.model")
    pose = data.get("pose")
    if pose is not None and not isinstance(pose, dict):
        raise TaskError(f"{where}: data.pose must be a pose object, got {_type(pose)}")
    if pose is not None:
        pose_fields(pose, f"{where}: data.pose")
    reference = data.get("reference")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        raise TaskError(f"{where}: data.reference must be a mask URL (a non-empty string), got {_short(reference)}")
    return {"id": identity, "image": image, "model": model, "pose": pose, "reference": reference,
            "annotations": annotations(value.get("annotations"), where), "where": where}


def model_id(value, where: str) -> str:
    """A registry model id: a non-empty string of at most :data:`MAX_ID_CHARS`."""
    if not isinstance(value, str) or not value:
        raise TaskError(f"{where} must name a registered CAD model (a string), got {_short(value)}")
    if len(value) > MAX_ID_CHARS:
        raise TaskError(f"{where} is {len(value)} characters long, over {MAX_ID_CHARS}")
    return value


def annotations(value, where: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TaskError(f"{where}: 'annotations' must be a list, got {_type(value)}")
    for index, item in enumerate(value):
        annotation(item, f"{where}: annotations[{index}]")
    ids = {type(a.get("id")) for a in value if a.get("id") is not None}
    if len(ids) > 1:
        raise TaskError(f"{where}: annotations[].id must all be numbers (or all strings), got a mix")
    return value


def annotation(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise TaskError(f"{where} must be an object, got {_type(value)}")
    for key in ("updated_at", "created_at"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise TaskError(f"{where}.{key} must be a date string, got {_short(value[key])}")
    if value.get("id") is not None and (isinstance(value["id"], bool) or not isinstance(value["id"], (int, str))):
        raise TaskError(f"{where}.id must be a number or a string, got {_short(value['id'])}")
    if not isinstance(value.get("was_cancelled", False), (bool, type(None))):
        raise TaskError(f"{where}.was_cancelled must be true or false, got {_short(value['was_cancelled'])}")
    result = value.get("result")
    if result is not None and not isinstance(result, list):
        raise TaskError(f"{where}.result must be a list of regions, got {_type(result)}")
    for index, item in enumerate(result or []):
        result_item(item, f"{where}.result[{index}]")
    return value


def result_item(item, where: str) -> dict:
    if not isinstance(item, dict):
        raise TaskError(f"{where} must be an object, got {_type(item)}")
    for key in ("type", "from_name"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise TaskError(f"{where}.{key} must be a string, got {_short(item[key])}")
    value = item.get("value")
    if value is not None and not isinstance(value, dict):
        raise TaskError(f"{where}.value must be an object, got {_type(value)}")
    if item.get("type") == "brushlabels" and value is not None:
        labels = value.get("brushlabels")
        if labels is not None and not _strings(labels):
            raise TaskError(f"{where}.value.brushlabels must be a list of label names, got {_short(labels)}")
    return item


# -- poses --------------------------------------------------------------------------------------
_POSE_NUMBER_FIELDS = ("azimuth", "elevation", "theta", "distance", "focal", "u", "v", "px", "py", "viewport",
                       "image_width", "image_height", "f")


def pose_fields(pose: dict, where: str) -> None:
    """Types and sizes of a pose object's fields before any convention reads it."""
    convention = pose.get("convention", "finepose")
    if not isinstance(convention, str):
        raise TaskError(f"{where}.convention must be a convention name, got {_short(convention)}")
    for key in _POSE_NUMBER_FIELDS:
        if key in pose:
            finite(pose[key], f"{where}.{key}")
    for key in ("image_width", "image_height"):
        if key in pose:
            side = pose[key]
            if side != int(side) or not 1 <= side <= MAX_IMAGE_SIDE:
                raise TaskError(f"{where}.{key} must be a whole number of px in [1, {MAX_IMAGE_SIDE}], got {_short(side)}")


def check_pose(pose, where: str):
    """``pose`` (a :class:`geometry.pose.Pose`) when every number is physically plausible
    (:data:`POSE_RANGES`, u and v relative to its image size); :class:`TaskError` naming the
    number and its range otherwise."""
    for name, (low, high, unit) in _pose_ranges(pose.width, pose.height).items():
        value = float(getattr(pose, name))
        if not math.isfinite(value) or not low <= value <= high:
            raise TaskError(f"{where}: pose {name} = {value:g} is outside [{low:g}, {high:g}] {unit}")
    if not 1 <= pose.width <= MAX_IMAGE_SIDE or not 1 <= pose.height <= MAX_IMAGE_SIDE:
        raise TaskError(f"{where}: pose image size {pose.width}x{pose.height} is outside [1, {MAX_IMAGE_SIDE}] px")
    frame = pose.mesh_frame
    if frame.shape != (3, 3) or not all(math.isfinite(x) for x in frame.ravel()) or abs(abs(_det3(frame)) - 1) > 1e-3:
        raise TaskError(f"{where}: pose mesh_frame must be a rotation (or reflection) matrix")
    return pose


def _det3(m) -> float:
    return float(m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]) - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
                 + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]))


# -- brush regions ------------------------------------------------------------------------------
def brush(item: dict, where: str, max_pixels: int) -> tuple[int, int, list]:
    """``(width, height, rle)`` of a brush region, checked against its image size before the
    RLE is decoded: the header's value count must be width x height x 4."""
    sizes = []
    for key in ("original_width", "original_height"):
        value = item.get(key)
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value != int(value) \
                or not 1 <= value <= MAX_IMAGE_SIDE:
            raise TaskError(f"{where}.{key} must be a whole number of px in [1, {MAX_IMAGE_SIDE}], got {_short(value)}")
        sizes.append(int(value))
    width, height = sizes
    if width * height > max_pixels:
        raise TaskError(f"{where}: {width}x{height} px is over the limit of {max_pixels} pixels (FINEPOSE_MAX_IMAGE_PIXELS)")
    value = item.get("value")
    rle = value.get("rle") if isinstance(value, dict) else None
    if not isinstance(rle, list) or len(rle) < 5:
        raise TaskError(f"{where}.value.rle must be a list of bytes (Label Studio's brush RLE), got {_short(rle)}")
    if not all(type(b) is int and 0 <= b <= 255 for b in rle):
        raise TaskError(f"{where}.value.rle must hold only integers 0-255")
    count = int.from_bytes(bytes(rle[:4]), "big")
    if count != width * height * 4:
        raise TaskError(f"{where}.value.rle encodes {count} values, but {width}x{height} px need {width * height * 4}")
    if len(rle) > count + 64:  # even all-literal runs take under a byte per value
        raise TaskError(f"{where}.value.rle is {len(rle)} bytes long, longer than any RLE of {count} values")
    return width, height, rle


# -- interactive context ------------------------------------------------------------------------
def context_regions(context) -> list[dict] | None:
    """The regions of an interactive call's context (None when there is none)."""
    if context is None or context == {}:
        return None
    if not isinstance(context, dict) or not isinstance(context.get("result"), list):
        raise TaskError(f"params.context must be {{'result': [regions]}}, got {_short(context)}")
    for index, item in enumerate(context["result"]):
        where = f"params.context.result[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise TaskError(f"{where} must be a region object with a 'value' object, got {_short(item)}")
        for key in ("type", "from_name"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise TaskError(f"{where}.{key} must be a string, got {_short(item[key])}")
    return context["result"]


def percent(value: dict, key: str, where: str) -> float:
    number = finite(value.get(key), f"{where}.value.{key}")
    low, high = PERCENT_RANGE
    if not low <= number <= high:
        raise TaskError(f"{where}.value.{key} = {number:g} is outside [{low:g}, {high:g}] percent of the image")
    return number


def labels(value, where: str) -> list[str]:
    if not _strings(value) or any(len(label) > MAX_LABEL_CHARS for label in value):
        raise TaskError(f"{where} must be a list of label names (strings of at most {MAX_LABEL_CHARS} characters), "
                        f"got {_short(value)}")
    return value


# -- webhooks -----------------------------------------------------------------------------------
def webhook_event(data: dict) -> str:
    event = data.get("action")
    if not isinstance(event, str) or not event or len(event) > MAX_ID_CHARS:
        raise TaskError(f"webhook body must carry an 'action' (the event name, a string), got {_short(event)}")
    return event


def webhook_annotation_event(data: dict) -> tuple[dict, dict, dict]:
    """``(annotation, task, project)`` of an annotation webhook, checked before any work."""
    project = data.get("project")
    if project is None:
        project = {}
    if not isinstance(project, dict):
        raise TaskError(f"webhook 'project' must be an object, got {_short(project)}")
    if project.get("label_config") is not None and not isinstance(project["label_config"], str):
        raise TaskError(f"webhook project.label_config must be the labeling config (a string), got "
                        f"{_type(project['label_config'])}")
    annotation_ = data.get("annotation")
    task_ = data.get("task")
    if not isinstance(annotation_, dict):
        raise TaskError(f"webhook without an 'annotation' object (got {_type(annotation_)})")
    if not isinstance(task_, dict):
        raise TaskError(f"webhook without a 'task' object (got {_type(task_)})")
    if task_.get("id") is None:
        raise TaskError("webhook task.id is missing: the refined pose could not be stored")
    task_id(task_["id"], "webhook task")
    annotation(annotation_, "webhook annotation")
    if not annotation_.get("result"):
        raise TaskError("webhook annotation.result is empty: there is no pose to refine")
    return annotation_, task_, project


# -- helpers ------------------------------------------------------------------------------------
def finite(value, where: str) -> float:
    """``value`` as a finite float; :class:`TaskError` naming ``where`` for anything else
    (bools, strings, NaN, infinities, integers too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TaskError(f"{where} must be a number, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise TaskError(f"{where} is too large a number") from None
    if not math.isfinite(number):
        raise TaskError(f"{where} must be a finite number, got {number}")
    return number


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _short(value) -> str:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
