"""The pose editor's HTTP side: the page, its data and its actions, all under ``/editor``.

Every route but the static files takes the page's signed link token (``?t=``, see
:mod:`.links`) and serves only the task it names. Routes of task ``<id>``:

- ``GET /editor/<id>``: the page; ``GET .../state``: the task as the page needs it (JSON);
  ``GET .../photo``: the photo's bytes (fetched by the backend); ``GET .../reference.png``
  (``?size=work`` for the refiner's working size): the reference mask;
  ``GET .../mesh.bin``: the model (:mod:`.meshdata`; ``?level=moving``: the coarser mesh
  drawn while the pose moves).
- ``POST .../refine`` ``{pose}``: finepose's refiner from ``pose`` against the reference;
  ``POST .../auto``: the automatic pose hypotheses; ``POST .../keypoints``
  ``{clicks: {name: [x, y]}}``: the pose fitted to clicked model keypoints;
  ``POST .../session`` ``{token}``: the annotator signs in with their own Label Studio token
  (:mod:`.annotators`: checked once, kept as a signed HttpOnly cookie, the token dropped);
  ``DELETE .../session``: signs out; ``POST .../save`` ``{pose, lead_time}``: an annotation
  in Label Studio credited to the signed-in annotator (``completed_by``; 401 without one):
  the numbers fitted to the project's ``Number`` tags, the projection's outline as a brush
  region, as predictions draw it; it answers the next task's link.

A task that cannot open (no model, an unknown one, a photo that cannot be read) answers
``state`` with its reason, the models the annotator may pick (a project whose labeling
config lists them; every route then takes ``?model=<id>``) and the next task's link.

``GET /editor/project/<project id>?t=`` redirects to the project's next task without an
annotation. Poses travel as the 7 numbers (degrees, model units, px of the photo). Every
response carries a strict Content-Security-Policy: scripts only from this backend.
"""

from __future__ import annotations

import html
import io
import logging
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from flask import Blueprint, Response, jsonify, redirect, request, send_file

from geometry.errors import GeometryError
from geometry.init_pose import initial_pose
from geometry.keypoints import MIN_POINTS, fit_pose_to_keypoints
from geometry.pose import PARAMETER_NAMES, Pose
from geometry.refine import refine
from geometry.search import RELEASE_STEPS

from ls_backend.studio.predictions import (PROJECTION, brush_result, model_choice_result, number_result, outline,
                                          pose_numbers, snapped)
from ls_backend.editor import links, meshdata
from ls_backend.editor.annotators import AnnotatorSessions
from ls_backend.process import made_once
from ls_backend.redact import scrubber
from ls_backend.editor.source import LabelStudioSource
from ls_backend.editor.task import EditorTask, TaskCache, load_task, pickable_models
from ls_backend.errors import BadRequest, FineposeError, LinkError, TaskError, http_status

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
#: The release's search steps (Algorithm 1's eps, :data:`geometry.search.RELEASE_STEPS`), shown as the keys' nudges.
NUDGES = dict(zip(PARAMETER_NAMES, map(float, RELEASE_STEPS)))


def create_editor_blueprint(resources, source=None) -> Blueprint:
    """The editor's routes for ``resources`` (the backend's); ``source`` reads tasks and
    writes annotations (default: Label Studio with the backend's credentials)."""
    bp = Blueprint("editor", __name__, url_prefix="/editor", static_folder=str(STATIC), static_url_path="/static")
    source = source or LabelStudioSource(resources)
    cache = TaskCache()
    scrub = scrubber(resources.settings)  # no server paths in what the page shows

    @made_once
    def signer() -> links.LinkSigner:  # made on first use: a backend without a key still serves /predict
        return links.LinkSigner(resources.settings)

    @made_once
    def sessions() -> AnnotatorSessions:
        return AnnotatorSessions(resources.settings)

    def base_url() -> str:
        return resources.settings.editor_url or request.host_url.rstrip("/")

    def cookie_path() -> str:
        """The editor's path as the browser sees it (``FINEPOSE_EDITOR_URL`` may put it under a prefix)."""
        return urlparse(base_url()).path.rstrip("/") + "/editor"

    def claims_of(task_id: int) -> links.Claims:
        return signer().for_task(request.args.get("t") or request.headers.get("X-Editor-Token"), task_id)

    def picked_model() -> str | None:
        """The model the annotator picked for a task that names none (``?model=``, see ``state``)."""
        return request.args.get("model") or None

    def editor_task(task_id: int) -> EditorTask:
        """The task of the request's link, loaded once per model picked."""
        claims = claims_of(task_id)
        model = picked_model()
        return cache.get((task_id, model), lambda: load_task(resources, source, task_id, claims.project, model))

    def recovery(task_id: int, project_id: int) -> dict:
        """What a page whose task cannot open offers: the models to pick from (a project whose
        labeling config lists them) and the next task's link."""
        try:
            models = pickable_models(resources, source, project_id)
        except Exception:  # the config or registry is what failed: nothing to pick from
            models = []
        try:
            following = source.next_unannotated(project_id, task_id)
        except Exception:
            following = None
        next_url = links.task_url(base_url(), signer(), project_id, following) if following not in (None, task_id) else None
        return {"models": models, "next": next_url}

    def body() -> dict:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object")
        return data

    @bp.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if request.path.startswith("/editor/static/"):
            response.headers["Cache-Control"] = "public, max-age=3600"
        else:
            response.headers["Cache-Control"] = "no-store"
        return response

    @bp.get("/<int:task_id>")
    def page(task_id: int):
        try:
            signer().for_task(request.args.get("t"), task_id)
        except LinkError as exc:
            return _message_page("Editor link refused", str(exc)), 403
        text = (STATIC / "editor.html").read_text().replace("{{task}}", str(int(task_id)))
        return Response(text, mimetype="text/html")

    @bp.get("/project/<int:project_id>")
    def project_queue(project_id: int):
        try:
            signer().for_project(request.args.get("t"), project_id)
        except LinkError as exc:
            return _message_page("Editor link refused", str(exc)), 403
        task_id = source.next_unannotated(project_id, None)
        if task_id is None:
            return _message_page("Nothing left to annotate", f"Every task of project {project_id} has an annotation.")
        return redirect(links.task_url(base_url(), signer(), project_id, task_id), 302)

    @bp.get("/<int:task_id>/state")
    def state(task_id: int):
        claims = claims_of(task_id)
        try:
            task = editor_task(task_id)
        except (FineposeError, GeometryError) as exc:  # a task that cannot open: why, and what still works
            status = http_status(exc)
            if status == 403 or status >= 500:
                raise
            logger.warning("editor: task %s cannot open: %s", task_id, exc)
            return jsonify(error=scrub(str(exc)), type=type(exc).__name__, **recovery(task_id, claims.project)), status
        registry = resources.require_registry()
        try:
            keypoints = {k: np.asarray(v).tolist() for k, v in registry.keypoints(task.model_id).items()}
        except Exception:  # no keypoint file for this model: the keypoint tool is off
            keypoints = {}
        triangles = {level: mesh_payload(task.model_id, level)[1] for level in meshdata.LEVELS}
        return jsonify(
            task=task.task_id, project=task.project_id, model=task.model_id,
            image={"width": task.width, "height": task.height},
            work={"width": task.work_width, "height": task.work_height},
            reference={"source": scrub(task.reference_source), "available": task.reference is not None},
            frame=task.frame.tolist(), mesh={"triangles": triangles["display"], "moving_triangles": triangles["moving"]},
            start={"pose": _numbers(task.start), "source": task.start_source, "notes": scrub(task.notes)},
            prediction=_numbers(task.prediction) if task.prediction is not None else None,
            steps={name: _step(task.config, name) for name in PARAMETER_NAMES},
            nudges=NUDGES, keypoints=keypoints, min_keypoints=MIN_POINTS,
            annotator=signed_in.public() if (signed_in := sessions().signed_in_for(request.cookies, task.project_id)) else None,
        )

    @made_once
    def mesh_payload(model_id: str, level: str = "display") -> tuple[bytes, int]:
        shown = meshdata.display_mesh(resources.require_registry().renderer(model_id).mesh, meshdata.LEVELS[level])
        return meshdata.encode(shown), len(shown.triangles)

    @bp.get("/<int:task_id>/photo")
    def photo(task_id: int):
        task = editor_task(task_id)
        return send_file(task.image_path, mimetype=_image_type(task.image_path), max_age=0)

    @bp.get("/<int:task_id>/reference.png")
    def reference(task_id: int):
        task = editor_task(task_id)
        if task.reference is None:
            raise TaskError(f"task {task_id} has no reference mask ({task.reference_source})")
        mask = task.work_reference() if request.args.get("size") == "work" else task.reference
        return Response(_png(mask), mimetype="image/png")

    @bp.get("/<int:task_id>/mesh.bin")
    def mesh(task_id: int):
        task = editor_task(task_id)
        level = request.args.get("level", "display")
        if level not in meshdata.LEVELS:
            raise BadRequest(f"unknown mesh level {level!r}; use one of {', '.join(meshdata.LEVELS)}")
        return Response(mesh_payload(task.model_id, level)[0], mimetype="application/octet-stream")

    @bp.post("/<int:task_id>/refine")
    def refine_pose(task_id: int):
        task = editor_task(task_id)
        start = task.pose(body().get("pose"))
        t0 = time.perf_counter()
        renderer = resources.require_registry().renderer(task.model_id)
        result = refine(renderer, task.work_reference(), start.rescaled(task.work_width, task.work_height),
                        method=resources.settings.method)
        refined = result.refined.rescaled(task.width, task.height)
        return jsonify(pose=_numbers(refined), iou_before=result.iou_initial, iou_after=result.iou_refined,
                       method=result.method, seconds=time.perf_counter() - t0)

    @bp.post("/<int:task_id>/auto")
    def auto(task_id: int):
        task = editor_task(task_id)
        t0 = time.perf_counter()
        renderer = resources.require_registry().renderer(task.model_id)
        found = initial_pose(renderer, task.work_reference(), mesh_frame=task.frame)
        hypotheses = [{"pose": _numbers(h.pose.rescaled(task.width, task.height)), "iou": h.iou} for h in found.hypotheses]
        return jsonify(hypotheses=hypotheses, ambiguous=found.ambiguous, seconds=time.perf_counter() - t0)

    @bp.post("/<int:task_id>/keypoints")
    def keypoints(task_id: int):
        task = editor_task(task_id)
        clicks = body().get("clicks")
        if not isinstance(clicks, dict) or len(clicks) < MIN_POINTS:
            raise TaskError(f"'clicks' must map at least {MIN_POINTS} keypoint names to image points [x, y] (px)")
        try:
            points = {str(k): np.array([float(v[0]), float(v[1])]) for k, v in clicks.items()}
        except (TypeError, ValueError, IndexError):
            raise TaskError("each click must be an image point [x, y] in pixels") from None
        model_points = resources.require_registry().keypoints(task.model_id)
        fit = fit_pose_to_keypoints(model_points, points, task.width, task.height, mesh_frame=task.frame)
        alternative = _numbers(fit.alternative) if fit.alternative is not None else None
        return jsonify(pose=_numbers(fit.pose), rms_px=fit.rms, poor=fit.poor, ambiguous=fit.ambiguous,
                       alternative=alternative, ignored=fit.ignored)

    @bp.post("/<int:task_id>/session")
    def sign_in(task_id: int):
        claims = claims_of(task_id)
        token = body().get("token")
        if not isinstance(token, str) or not token.strip():
            raise BadRequest("token: paste your Label Studio Personal Access Token (Account & Settings -> "
                             "Personal Access Token)")
        user = source.annotator(token.strip(), claims.project)
        annotator = sessions().signed_in(request.cookies, user, claims.project)
        logger.info("editor: user %s signed in for project %s", annotator.user, claims.project)
        response = jsonify(annotator=annotator.public())
        sessions().set_cookie(response, annotator, secure=request.is_secure or base_url().startswith("https://"),
                              path=cookie_path())
        return response

    @bp.delete("/<int:task_id>/session")
    def sign_out(task_id: int):
        claims_of(task_id)
        response = jsonify(annotator=None)
        sessions().clear_cookie(response, path=cookie_path())
        return response

    @bp.post("/<int:task_id>/save")
    def save(task_id: int):
        task = editor_task(task_id)
        annotator = sessions().require(request.cookies, task.project_id)
        data = body()
        pose = task.pose(data.get("pose"))
        lead_time = data.get("lead_time")
        lead_time = float(lead_time) if isinstance(lead_time, (int, float)) and np.isfinite(lead_time) else None
        saved = snapped(task.config, pose)  # the numbers on the project's Number grids, and what they mean
        numbers = pose_numbers(saved)
        projection = resources.require_registry().renderer(task.model_id).render(saved)
        result = [number_result(task.config, name, value) for name, value in numbers.items()]
        result.append(brush_result(task.config, PROJECTION, outline(projection)))  # drawn as predictions are
        choice = model_choice_result(task.config, task.model_id)  # a project listing its models: the one posed
        if choice is not None:
            result.append(choice)
        annotation = source.create_annotation(task_id, result, lead_time, completed_by=annotator.user)
        for model in {None, picked_model()}:  # the task as loaded with and without the pick
            cache.forget((task_id, model))
        logger.info("editor: task %s annotated by user %s (annotation %s)", task_id, annotator.user, annotation)
        following = source.next_unannotated(task.project_id, task_id)
        next_url = links.task_url(base_url(), signer(), task.project_id, following) if following is not None else None
        return jsonify(annotation=annotation, numbers=numbers, next=next_url, next_task=following)

    return bp


def _step(config, name: str) -> str | None:
    """A Number's step as text (the page shows that many decimals), or None."""
    spec = config.specs.get(name)
    return None if spec is None or spec.step is None else f"{spec.step:.{spec.decimals}f}"


def _numbers(pose: Pose) -> dict:
    return dict(zip(PARAMETER_NAMES, (float(x) for x in pose.vector())))


def _png(mask: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(out, format="PNG")
    return out.getvalue()


def _image_type(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return Image.MIME.get(image.format, "application/octet-stream")


def _message_page(title: str, message: str) -> Response:
    text = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<link rel='stylesheet' href='/editor/static/editor.css'></head><body class='message'>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>")
    return Response(text, mimetype="text/html")
