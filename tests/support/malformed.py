"""Malformed and fuzzed requests for the ML backend, shared by the reliability tests and
``bench/robustness_bench.py``.

:func:`malformed_cases` lists request classes, each with the status range it must get and words
its error must contain (the field it names); :func:`fuzzed_requests` mutates a valid body with a
seeded random generator. Both run against a Flask test client or a served backend through
:class:`ClientTarget` / :class:`HttpTarget`. A world (``tests.support.world.World``) gives the
valid task, label config and media URLs; :func:`plant_files` writes the hostile files the cases
name into its local-files root.
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import dataclass, field

from tests.support.hostile_media import png_bomb, png_claiming, rle_claiming

DEEP = 100_000  # nesting of the deepest JSON sent (Python's parser recurses: RecursionError)
#: An interactive call's region that finepose cannot use is answered 200 with the error in the
#: labeling config's ``finepose_message`` region (shown on the labeling screen), when it has one.
INTERACTIVE = (200, 200)
#: A start pose whose values are unusable (out of range, unknown names) never blocks its task:
#: it is passed over, the task is predicted from the next start, and the message box (so the
#: answer) names the field (:mod:`ls_backend.studio.resolve`). Malformed JSON types still get a 4xx.
PASSED_OVER = (200, 200)


@dataclass
class Case:
    name: str
    body: object = None  # JSON-able (sent with allow_nan) or bytes (sent raw)
    path: str = "/predict"
    method: str = "POST"
    content_type: str = "application/json"
    status: tuple[int, int] = (400, 499)  # inclusive range the answer must fall in
    words: tuple[str, ...] = ()  # each must appear in the error message (case-insensitive)

    def payload(self) -> bytes:
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        if self.body is None:
            return b""
        return json.dumps(self.body, allow_nan=True).encode()


@dataclass
class Answer:
    status: int
    text: str
    seconds: float = 0.0

    @property
    def error(self) -> str:
        try:
            data = json.loads(self.text)
        except ValueError:
            return self.text
        return str(data.get("error", "")) if isinstance(data, dict) else self.text


class ClientTarget:
    """A Flask test client."""

    def __init__(self, client):
        self.client = client

    def send(self, method: str, path: str, data: bytes = b"", content_type: str = "application/json", auth=None) -> Answer:
        response = self.client.open(path, method=method, data=data, content_type=content_type, auth=auth)
        return Answer(response.status_code, response.get_data(as_text=True))


class HttpTarget:
    """A served backend at ``base`` (``http://host:port``)."""

    def __init__(self, base: str, timeout: float = 120.0, auth=None):
        import requests

        self.base, self.timeout, self.auth = base.rstrip("/"), timeout, auth
        self.session = requests.Session()

    def send(self, method: str, path: str, data: bytes = b"", content_type: str = "application/json", auth=None) -> Answer:
        import time

        start = time.perf_counter()
        response = self.session.request(method, self.base + path, data=data, headers={"Content-Type": content_type},
                                        timeout=self.timeout, auth=auth or self.auth)
        return Answer(response.status_code, response.text, time.perf_counter() - start)


def send(target, case: Case) -> Answer:
    return target.send(case.method, case.path, case.payload(), case.content_type)


def plant_files(root) -> None:
    """Hostile media files in a local-files root: headers claiming huge sizes, a real bomb,
    an empty file, text named .png, a 1x1 photo."""
    import io

    from PIL import Image

    (root / "claims-60000.png").write_bytes(png_claiming(60000, 60000))
    (root / "claims-9000.png").write_bytes(png_claiming(9000, 9000))
    (root / "bomb-20000.png").write_bytes(png_bomb(20000, 20000))
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("this is not an image\n")
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 40, 40)).save(buffer, "PNG")
    (root / "one-pixel.png").write_bytes(buffer.getvalue())
    (root / "truncated.png").write_bytes((root / "photo.png").read_bytes()[:200])


# -- the catalogue -------------------------------------------------------------------------------
def malformed_cases(world) -> list[Case]:
    """Every malformed request class, built on ``world``'s valid task (see module doc)."""
    cases: list[Case] = []
    cases += _body_cases(world)
    cases += _task_cases(world)
    cases += _annotation_cases(world)
    cases += _pose_cases(world)
    cases += _context_cases(world)
    cases += _media_cases(world)
    cases += _webhook_cases(world)
    cases += _other_routes(world)
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


def valid_task(world, **data) -> dict:
    return world.task(pose=world.start_pose.to_dict(), reference=world.url("reference.png"), **data)


def predict_body(world, task=None, **extra) -> dict:
    return {"tasks": [task if task is not None else valid_task(world)], "label_config": world.label_config,
            "project": "1.1", **extra}


def _with_task(world, name, change, words=(), status=(400, 499)) -> Case:
    task = valid_task(world)
    change(task)
    return Case(name, predict_body(world, task), words=tuple(words), status=status)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _body_cases(world) -> list[Case]:
    good = predict_body(world)
    deep_in_data = valid_task(world)
    deep_in_data["data"]["extra"] = json.loads(_nested(500))
    return [
        Case("empty body", b"", words=("JSON",)),
        Case("not JSON", b"not json", words=("JSON",)),
        Case("truncated JSON", json.dumps(good).encode()[:-10], words=("JSON",)),
        Case("JSON array body", [], words=("object",)),
        Case("JSON string body", "tasks", words=("object",)),
        Case("JSON null body", b"null", words=("object",)),
        Case("5000-digit integer body", b"1" * 5000, words=("digits",)),
        Case("5000-digit integer as task id", json.dumps(predict_body(world)).replace('"id": 1', '"id": ' + "9" * 5000).encode(),
             words=("digits",)),
        Case("JSON sent as text/plain", json.dumps(good).encode(), content_type="text/plain", status=(415, 415),
             words=("application/json",)),
        Case("form-encoded body", b"tasks=1", content_type="application/x-www-form-urlencoded", status=(415, 415),
             words=("application/json",)),
        Case("deeply nested JSON", _nested(DEEP).encode(), words=("nested",)),
        Case("deeply nested object JSON", ('{"a":' * 5000 + "1" + "}" * 5000).encode(), words=("nested",)),
        Case("nesting 500 deep inside task data", predict_body(world, deep_in_data), words=("nested",)),
        Case("invalid UTF-8", b'{"tasks": "\xff\xfe"}', words=("UTF-8",)),
        Case("body over the request size limit", b'{"tasks": ["' + b"x" * (60 << 20) + b'"]}', status=(413, 413),
             words=("FINEPOSE_MAX_REQUEST_BYTES",)),
        Case("tasks missing", {"label_config": world.label_config}, words=("tasks",)),
        Case("tasks an object", {**good, "tasks": {}}, words=("tasks",)),
        Case("tasks a string", {**good, "tasks": "abc"}, words=("tasks",)),
        Case("tasks empty", {**good, "tasks": []}, words=("tasks",)),
        Case("task a number", {**good, "tasks": [5]}, words=("task",)),
        Case("task null", {**good, "tasks": [None]}, words=("task",)),
        Case("label_config missing", {"tasks": good["tasks"]}, words=("label_config",)),
        Case("label_config a number", {**good, "label_config": 5}, words=("label_config",)),
        Case("label_config broken XML", {**good, "label_config": "<View><Image"}, words=("label_config",)),
        Case("label_config without pose controls", {**good, "label_config": "<View><Image name='i' value='$image'/></View>"},
             words=("Number",)),
        Case("label_config entity expansion", {**good, "label_config": _billion_laughs()}, words=("label_config",)),
        Case("label_config two images", {**good, "label_config": world.label_config.replace(
            '<Image name="image" value="$image"', '<Image name="image2" value="$image"/><Image name="image" value="$image"')},
             words=("Image",)),
        Case("params a number", {**good, "params": 5}, words=("params",)),
        Case("params.context a string", {**good, "params": {"context": "x"}}, words=("context",)),
        Case("project an object", {**good, "project": {"id": []}}, status=(200, 200)),  # unused by /predict
    ]


def _billion_laughs() -> str:
    entities = '<!ENTITY a0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    return f'<?xml version="1.0"?><!DOCTYPE View [{entities}]><View><Header value="&a9;"/></View>'


def _task_cases(world) -> list[Case]:
    def set_data(key, value):
        return lambda t: t["data"].__setitem__(key, value)

    def set_task(key, value):
        return lambda t: t.__setitem__(key, value)

    cases = [
        _with_task(world, "task without data", lambda t: t.pop("data"), ["data"]),
        _with_task(world, "data a list", set_task("data", []), ["data"]),
        _with_task(world, "data a string", set_task("data", "x"), ["data"]),
        _with_task(world, "image missing", lambda t: t["data"].pop("image"), ["data.image"]),
        _with_task(world, "image a number", set_data("image", 5), ["data.image"]),
        _with_task(world, "image empty", set_data("image", ""), ["data.image"]),
        _with_task(world, "image blank", set_data("image", "   "), ["data.image"]),
        _with_task(world, "image 100 kB long", set_data("image", "/data/upload/1/" + "a" * 100_000), ["data.image"]),
        _with_task(world, "model missing", lambda t: t["data"].pop("model"), ["data.model"]),
        _with_task(world, "model a number", set_data("model", 5), ["data.model"]),
        _with_task(world, "model empty", set_data("model", ""), ["data.model"]),
        _with_task(world, "model unknown", set_data("model", "no-such-car"), ["no-such-car"], status=(404, 404)),
        _with_task(world, "model a path", set_data("model", "../../etc/passwd"), ["unknown model"], status=(404, 404)),
        _with_task(world, "model 10 kB long", set_data("model", "m" * 10_000), ["data.model"]),
        _with_task(world, "pose a number", set_data("pose", 5), ["data.pose"]),
        _with_task(world, "pose a list", set_data("pose", []), ["data.pose"]),
        _with_task(world, "pose a string", set_data("pose", "x"), ["data.pose"]),
        _with_task(world, "reference a number", set_data("reference", 5), ["data.reference"]),
        _with_task(world, "reference a list", set_data("reference", ["a"]), ["data.reference"]),
    ]
    for label, value in [("a string", "abc"), ("1e308", 1e308), ("Infinity", math.inf), ("NaN", math.nan), ("negative", -1),
                         ("a path", "../../x"), ("a list", [1]), ("an object", {"a": 1}), ("a boolean", True),
                         ("2**70", 2**70), ("a float", 1.5)]:
        cases.append(_with_task(world, f"task id {label}", set_task("id", value), ["id"]))
    return cases


def _numbers(values) -> list[dict]:
    names = ("azimuth", "elevation", "theta", "distance", "focal", "u", "v")
    return [{"from_name": n, "to_name": "image", "type": "number", "value": {"number": v}} for n, v in zip(names, values)]


def _annotation_cases(world) -> list[Case]:
    pose = world.start_pose
    good_numbers = [pose.azimuth, pose.elevation, pose.theta, pose.distance, pose.focal, pose.u, pose.v]

    def annotations(value):
        return lambda t: t.__setitem__("annotations", value)

    def numbers_with(index, value):
        values = list(good_numbers)
        values[index] = value
        return annotations([{"id": 1, "result": _numbers(values)}])

    def result(items):
        return annotations([{"id": 1, "result": items}])

    def brush(**changes):
        item = {"from_name": "masks", "to_name": "image", "type": "brushlabels", "original_width": pose.width,
                "original_height": pose.height, "value": {"format": "rle", "rle": [0, 0, 0, 0], "brushlabels": ["Reference"]}}
        value = changes.pop("value", {})
        item.update(changes)
        item["value"].update(value)
        return result([item])

    number_value = lambda v: result([{**r, "value": v} if r["from_name"] == "azimuth" else r for r in _numbers(good_numbers)])
    return [
        _with_task(world, "annotations a number", annotations(5), ["annotations"]),
        _with_task(world, "annotations a string", annotations("x"), ["annotations"]),
        _with_task(world, "annotation a number", annotations([5]), ["annotations[0]"]),
        _with_task(world, "annotation result a number", annotations([{"id": 1, "result": 5}]), ["result"]),
        _with_task(world, "annotation result item a number", result([5]), ["result[0]"]),
        _with_task(world, "annotation result type a number", result([{"type": 5, "value": {}}]), ["type"]),
        _with_task(world, "annotation ids of mixed types",
                   annotations([{"id": "a", "result": []}, {"id": 1, "result": []}]), ["id"]),
        _with_task(world, "annotation updated_at a number",
                   annotations([{"id": 1, "updated_at": 5, "result": []}]), ["updated_at"]),
        _with_task(world, "annotation was_cancelled a string",
                   annotations([{"id": 1, "was_cancelled": "yes", "result": []}]), ["was_cancelled"]),
        _with_task(world, "number value a list", numbers_with(0, [1]), ["azimuth"], status=PASSED_OVER),
        _with_task(world, "number value a string", numbers_with(0, "x"), ["azimuth"], status=PASSED_OVER),
        _with_task(world, "number value NaN", numbers_with(0, math.nan), ["azimuth"], status=PASSED_OVER),
        _with_task(world, "number value 1e308 focal", numbers_with(4, 1e308), ["focal"], status=PASSED_OVER),
        _with_task(world, "number value 0 distance", numbers_with(3, 0), ["distance"], status=PASSED_OVER),
        _with_task(world, "number value u 1e300", numbers_with(5, 1e300), ["u"], status=PASSED_OVER),
        _with_task(world, "number result value a number", number_value(5), ["value"]),
        _with_task(world, "number result value without number", number_value({}), ["azimuth"], status=PASSED_OVER),
        _with_task(world, "brushlabels a number", brush(value={"brushlabels": 5}), ["brushlabels"]),
        _with_task(world, "brush value a number",
                   result([{"from_name": "masks", "to_name": "image", "type": "brushlabels", "value": 5}]), ["value"]),
        _with_task(world, "brush rle a number", brush(value={"rle": 5}), ["rle"]),
        _with_task(world, "brush rle a string", brush(value={"rle": "abc"}), ["rle"]),
        _with_task(world, "brush rle empty", brush(value={"rle": []}), ["rle"]),
        _with_task(world, "brush rle bytes out of range", brush(value={"rle": [300, -1, 0, 0]}), ["rle"]),
        _with_task(world, "brush rle claiming 2**32-1 values", brush(value={"rle": rle_claiming(0xFFFFFFFF)}), ["rle"]),
        _with_task(world, "brush rle claiming another size", brush(value={"rle": rle_claiming(1000)}), ["rle"]),
        _with_task(world, "brush rle truncated", brush(value={"rle": rle_claiming(pose.width * pose.height * 4)[:6]}),
                   ["rle"]),
        _with_task(world, "brush rle 1 MB", brush(value={"rle": rle_claiming(0xFFFFFFFF, body_bytes=250_000)}), ["rle"]),
        _with_task(world, "brush original_width a string", brush(original_width="x"), ["original_width"]),
        _with_task(world, "brush original_width negative", brush(original_width=-5), ["original_width"]),
        _with_task(world, "brush original_width 1e9", brush(original_width=10**9), ["original_width"]),
        _with_task(world, "brush original_height Infinity", brush(original_height=math.inf), ["original_height"]),
        _with_task(world, "brush without original size", lambda t: brush()(t) or t["annotations"][0]["result"][0].pop(
            "original_width"), ["original_width"]),
    ]


def _pose_cases(world) -> list[Case]:
    def pose_with(**changes):
        def change(task):
            task["data"]["pose"] = {**task["data"]["pose"], **changes}
        return change

    def without(key):
        return lambda t: t["data"]["pose"].pop(key)

    cases = []
    for field_name, values in {
        "azimuth": [math.nan, math.inf, "x", [1], None, 1e300],
        "distance": [0, -1, 1e-300, 1e308],
        "focal": [0, -5, 1e308, 1e-300],
        "u": [1e300, -1e300],
        "v": [1e300],
        "image_width": [math.nan, math.inf, 1e300, 0, -1, "x"],
        "image_height": [1e300, 0],
    }.items():
        for value in values:
            usable_type = isinstance(value, (int, float)) and math.isfinite(value)
            status = PASSED_OVER if usable_type and field_name in ("azimuth", "distance", "focal", "u", "v") else (400, 499)
            cases.append(_with_task(world, f"pose {field_name} {value!r}", pose_with(**{field_name: value}), [field_name],
                                    status=status))
    cases += [
        _with_task(world, "pose image_height missing", without("image_height"), ["image_height"], status=PASSED_OVER),
        _with_task(world, "pose focal missing", without("focal"), ["focal"], status=PASSED_OVER),
        _with_task(world, "pose convention unknown", pose_with(convention="xyz"), ["convention"], status=PASSED_OVER),
        _with_task(world, "pose convention a number", pose_with(convention=5), ["convention"]),
        _with_task(world, "pose mesh_frame unknown name", pose_with(mesh_frame="no-such-frame"), ["mesh_frame"], status=PASSED_OVER),
        # (the world's task holds a usable annotation, which comes first: these data.pose are never read)
        _with_task(world, "pose mesh_frame 1x1", pose_with(mesh_frame=[[1]]), [], status=PASSED_OVER),
        _with_task(world, "pose mesh_frame degenerate", pose_with(mesh_frame=[[0, 0, 0], [0, 0, 0], [0, 0, 0]]), [],
                   status=PASSED_OVER),
        _with_task(world, "pose mesh_frame NaN", pose_with(mesh_frame=[[math.nan] * 3] * 3), ["mesh_frame"], status=PASSED_OVER),
        _with_task(world, "pose pascal3d without viewport",
                   lambda t: t["data"].__setitem__("pose", {"convention": "pascal3d", "azimuth": 1, "image_width": 10,
                                                            "image_height": 10}), ["pose"], status=PASSED_OVER),
        _with_task(world, "pose seed with strings",
                   lambda t: t["data"].__setitem__("pose", {"convention": "seed", "azimuth": "a", "image_width": 10,
                                                            "image_height": 10}), ["pose"]),
    ]
    return cases


def _context_cases(world) -> list[Case]:
    def context(value):
        return Case(f"context {json.dumps(value, allow_nan=True)[:100]}", predict_body(world, params={"context": value}),
                    words=("context",) if not isinstance(value, dict) or not isinstance(value.get("result"), list) else ())

    def keypoint(value, task_id=1, words=()):
        region = {"from_name": "keypoints", "to_name": "image", "type": "keypointlabels",
                  "value": {"x": 50, "y": 50, "width": 0.5, "keypointlabels": ["left_front_wheel"], **value}}
        task = valid_task(world)
        task["id"] = task_id
        return Case(f"keypoint {json.dumps(value, allow_nan=True)[:50]} task {task_id!r}",
                    predict_body(world, task, params={"context": {"result": [region]}}), words=tuple(words),
                    status=INTERACTIVE)

    def rectangle(value, words=("value.",)):
        region = {"from_name": "box", "to_name": "image", "type": "rectanglelabels",
                  "value": {"x": 10, "y": 10, "width": 50, "height": 50, "rectanglelabels": ["Object"], **value}}
        return Case(f"rectangle {json.dumps(value, allow_nan=True)[:50]}", predict_body(world, params={"context": {"result": [region]}}),
                    words=words, status=INTERACTIVE)

    return [
        context(5),
        context("x"),
        context({"result": 5}),
        context({"result": [5]}),
        context({"result": [{"type": "keypointlabels", "from_name": "keypoints"}]}),
        context({"result": [{"type": "keypointlabels", "from_name": "keypoints", "value": 5}]}),
        keypoint({"x": "a"}, words=["x"]),
        keypoint({"x": 1e6}, words=["x"]),
        keypoint({"y": -1e6}, words=["y"]),
        keypoint({"x": math.nan}, words=["x"]),
        keypoint({"keypointlabels": 5}, words=["keypointlabels"]),
        keypoint({"keypointlabels": [5]}, words=["keypointlabels"]),
        keypoint({"keypointlabels": [[1]]}, words=["keypointlabels"]),
        keypoint({"keypointlabels": ["x" * 10_000]}, words=["keypointlabels"]),
        keypoint({}, task_id=1e308, words=["id"]),
        keypoint({}, task_id=math.inf, words=["id"]),
        keypoint({}, task_id="../../x", words=["id"]),
        keypoint({}, task_id=-3, words=["id"]),
        rectangle({"width": -5}),
        rectangle({"x": math.nan}),
        rectangle({"height": 1e300}),
        rectangle({"x": "a"}),
        rectangle({"x": 95, "y": 95, "width": 1, "height": 1}, words=("rectangle",)),  # holds none of the reference
    ]


def _media_cases(world) -> list[Case]:
    ls_host = "127.0.0.1:9"  # nothing listens there: a case that reached it would fail differently

    def image(url, words, status=(400, 499)):
        return _with_task(world, f"image {url[:70]!r}", lambda t: t["data"].__setitem__("image", url), words, status)

    def reference(url, words, status=(400, 499)):
        return _with_task(world, f"reference {url[:70]!r}", lambda t: t["data"].__setitem__("reference", url), words, status)

    return [
        image("file:///etc/passwd", ["refused"]),
        image("/etc/passwd", ["refused"]),
        image("ftp://example.com/a.png", ["refused"]),
        image("gopher://127.0.0.1/", ["refused"]),
        image("data:image/png;base64,iVBORw0KGgo=", ["refused"]),
        image("javascript:alert(1)", ["refused"]),
        image("/data/upload/../../secret.png", ["refused", ".."]),
        image("/data/upload/1/%2e%2e/%2e%2e/secret.png", ["refused", ".."]),
        image("/data/upload/1/%252e%252e/secret.png", ["refused", ".."]),
        image("/data/local-files/?d=../../etc/passwd", ["refused", ".."]),
        image("/data/local-files/?d=%2E%2E/secret.png", ["refused", ".."]),
        image("/storage-data/uploaded/?filepath=../../../../etc/passwd", ["refused", ".."]),
        image(f"http://{ls_host}/data/local-files/?d=../../etc/passwd", ["refused", ".."]),
        image("/data/upload/1\\..\\..\\secret.png", ["refused"]),
        image("http://evil.example.com/a.png", ["FINEPOSE_ALLOWED_HOSTS"]),
        image(f"http://user:pass@{ls_host}/a.png", ["refused"]),
        image(f"http://{ls_host}@evil.example.com/a.png", ["refused"]),
        image("http://[::1]:9/a.png", ["FINEPOSE_ALLOWED_HOSTS"]),
        image("http://xn--80ak6aa92e.com/a.png", ["FINEPOSE_ALLOWED_HOSTS"]),
        image("http://evil.example.com/a.png\r\nX-Injected: 1", ["refused"]),
        image("s3://bucket/a.png", ["s3://bucket/a.png", "data.image"]),
        image(world.url("claims-60000.png"), ["claims-60000.png", "FINEPOSE_MAX_IMAGE_PIXELS"]),
        image(world.url("claims-9000.png"), ["claims-9000.png", "FINEPOSE_MAX_IMAGE_PIXELS"]),
        image(world.url("bomb-20000.png"), ["bomb-20000.png", "FINEPOSE_MAX_IMAGE_PIXELS"]),
        image(world.url("empty.png"), ["empty.png"]),
        image(world.url("text.png"), ["text.png", "not a readable image"]),
        image(world.url("truncated.png"), ["truncated.png"]),
        image(world.url("missing.png"), ["missing.png"]),
        image(world.url("one-pixel.png"), ["one-pixel.png", "1x1"]),
        reference(world.url("claims-60000.png"), ["claims-60000.png"]),
        reference(world.url("text.png"), ["text.png"]),
        reference(world.url("empty.png"), ["empty.png"]),
    ]


def _webhook_cases(world) -> list[Case]:
    pose = world.start_pose
    annotation = world.human_annotation(pose)
    task = valid_task(world)
    project = {"id": 3, "label_config": world.label_config}
    good = {"action": "ANNOTATION_CREATED", "annotation": annotation, "task": task, "project": project}

    def hook(name, words=(), status=(400, 499), **changes):
        body = {**copy.deepcopy(good), **changes}
        return Case(f"webhook {name}", {k: v for k, v in body.items() if v is not _DROP}, path="/webhook",
                    words=tuple(words), status=status)

    no_id = copy.deepcopy(task)
    no_id.pop("id")
    string_id = {**copy.deepcopy(task), "id": "abc"}
    return [
        Case("webhook body a list", [], path="/webhook", words=("object",)),
        Case("webhook body not JSON", b"{", path="/webhook", words=("JSON",)),
        hook("without action", ["action"], action=_DROP),
        hook("action a number", ["action"], action=5),
        hook("action unknown", status=(200, 201), action="PROJECT_UPDATED"),
        hook("project a string", ["project"], project="abc"),
        hook("project a number", ["project"], project=5),
        hook("project label_config a number", ["label_config"], project={"id": 3, "label_config": 5}),
        hook("without annotation", ["annotation"], annotation=_DROP),
        hook("annotation a number", ["annotation"], annotation=5),
        hook("without task", ["task"], task=_DROP),
        hook("task a string", ["task"], task="x"),
        hook("task without id", ["task.id"], task=no_id),
        hook("task id a string", ["id"], task=string_id),
        hook("annotation without result", ["result"], annotation={"id": 1}),
        hook("annotation result empty", ["result"], annotation={"id": 1, "result": []}),
        hook("annotation result a number", ["result"], annotation={"id": 1, "result": 5}),
        hook("annotation cancelled", ["cancelled"], status=(200, 201), annotation={**annotation, "was_cancelled": True}),
        hook("Label Studio unreachable", ["Label Studio"], status=(502, 504)),
    ]


_DROP = object()


def _other_routes(world) -> list[Case]:
    return [
        Case("setup body a list", [], path="/setup", words=("object",)),
        Case("setup schema a number", {"project": "1", "schema": 5}, path="/setup", words=("schema",)),
        Case("setup not JSON", b"{", path="/setup", words=("JSON",)),
        Case("GET /predict", None, method="GET", status=(405, 405)),
        Case("PUT /setup", {}, path="/setup", method="PUT", status=(405, 405)),
        Case("DELETE /webhook", None, path="/webhook", method="DELETE", status=(405, 405)),
        Case("unknown path", {}, path="/admin", status=(404, 404)),
        Case("path traversal in the route", None, path="/../../etc/passwd", method="GET", status=(404, 404)),
        Case("very long path", None, path="/" + "a" * 8000, method="GET", status=(404, 414)),
    ]


# -- fuzzing -------------------------------------------------------------------------------------
HOSTILE_VALUES = [None, True, False, 0, -1, 1, 2**63, -(2**70), 1e308, -1e308, 1e-300, math.nan, math.inf, -math.inf, "",
                  "x", "../../etc/passwd", "1e308", "NaN", "\u0000", "\ud7ff" * 3, "é" * 50, [], {}, [[]], [None], [1, "a"],
                  {"a": {"b": {}}}, "x" * 5000, list(range(50))]


@dataclass
class Fuzzed:
    path: str
    body: object
    mutations: list[str] = field(default_factory=list)


def fuzzed_requests(world, count: int, seed: int = 11) -> list[Fuzzed]:
    """``count`` requests, each a valid /predict, /webhook or /setup body with 1-3 random
    mutations (a value replaced by a hostile one, a key dropped or added, a list emptied or
    duplicated); the same ``seed`` gives the same requests."""
    rng = random.Random(seed)
    pose = world.start_pose
    out = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.7:
            path, body = "/predict", predict_body(world)
            if rng.random() < 0.3:
                body["tasks"][0]["annotations"] = [world.human_annotation(pose)]
            if rng.random() < 0.2:
                body["params"] = {"context": {"result": [{"from_name": "box", "to_name": "image", "type": "rectanglelabels",
                                                           "value": {"x": 10, "y": 10, "width": 80, "height": 80,
                                                                     "rectanglelabels": ["Object"]}}]}}
        elif roll < 0.9:
            path, body = "/webhook", {"action": "ANNOTATION_CREATED", "annotation": world.human_annotation(pose),
                                      "task": valid_task(world), "project": {"id": 3, "label_config": world.label_config}}
        else:
            path, body = "/setup", {"project": "3.1", "schema": world.label_config}
        fuzzed = Fuzzed(path, body)
        for _ in range(rng.randint(1, 3)):
            fuzzed.body = _mutate(fuzzed.body, rng, fuzzed.mutations)
        out.append(fuzzed)
    return out


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "label_config" or key == "schema":
                yield prefix + (key,)
                continue
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value[:20]):
            yield from _paths(item, prefix + (index,))


def _mutate(body, rng: random.Random, log: list[str]):
    paths = list(_paths(body))
    path = rng.choice(paths)
    if not path:
        value = rng.choice(HOSTILE_VALUES)
        log.append(f"body = {value!r:.40}")
        return copy.deepcopy(value)
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = rng.random()
    if action < 0.6:
        value = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        parent[key] = value
        log.append(f"{'.'.join(map(str, path))} = {value!r:.40}")
    elif action < 0.8 and isinstance(parent, dict):
        parent.pop(key)
        log.append(f"del {'.'.join(map(str, path))}")
    elif action < 0.9 and isinstance(parent, dict):
        parent[rng.choice(["id", "data", "value", "result", "x", "__proto__"])] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        log.append(f"add key under {'.'.join(map(str, path[:-1]))}")
    else:
        parent[key] = [parent[key]] * rng.randint(0, 3)
        log.append(f"{'.'.join(map(str, path))} wrapped in a list")
    return body
