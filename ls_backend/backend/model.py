"""finepose's model class, shaped like label-studio-ml 2.x's ``LabelStudioMLBase``.

``setup()``, ``predict(tasks, context=None, **kwargs)`` and ``fit(event, data, **kwargs)``
keep their names and meaning; the heavy state (meshes, scenes, segmentation models) lives in
the process-wide :class:`~ls_backend.resources.Resources`, so a model object is cheap and
``/predict`` works in any worker without a prior ``/setup``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from urllib.parse import urlparse

from ls_backend.studio.label_config import parse_label_config
from ls_backend.pipeline.predict import PredictRequest, predict_shared
from ls_backend.process import SharedRuns
from ls_backend.studio.client import replace_predictions, update_annotation
from ls_backend.studio.predictions import same_prediction
from ls_backend.pipeline.smart import message_result
from ls_backend.resources import Resources
from geometry.errors import GeometryError
from ls_backend.studio import taskdata
from ls_backend.redact import scrub
from ls_backend.studio import validation
from ls_backend.errors import CredentialsError, FineposeError, UpstreamError

logger = logging.getLogger(__name__)

REFINE_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class FineposeModel:
    def __init__(self, project_id=None, label_config: str | None = None, resources: Resources | None = None,
                 on_tasks=None):
        self.project_id = project_id
        self.label_config = label_config
        self.resources = resources or Resources.shared()
        self.on_tasks = on_tasks  # called with each /predict's tasks (the editor's link renewal)

    @property
    def model_version(self) -> str:
        return self.resources.model_version

    def setup(self) -> None:
        """Nothing to load here: resources are shared by the process and built on first use."""

    def predict(self, tasks: list, context: dict | None = None, **kwargs) -> dict:
        """Predictions per task, in order (``{"model_version", "predictions"}``): each item is
        the refined pose's prediction, or a list when there is a far-apart second hypothesis
        (:meth:`Outcome.stored_order`: the best last; Label Studio stores both and the
        annotator switches between them in one click).

        A task that fails gets an empty list (Label Studio stores nothing, so "Retrieve
        Predictions" tries it again) and its reason in the task's ``finepose_error`` data
        field (:mod:`ls_backend.studio.taskdata`); a single-task request also raises, so the
        client sees the 4xx. A success clears the field, or says which start was passed over.
        Calls with the same task and inputs share one refinement (:func:`predict_shared`); a
        call that joined another one in flight answers nothing for that task, so Label Studio
        stores the predictions once (the other call's answer holds them).
        """
        config = parse_label_config(self.label_config)
        if self.on_tasks is not None:
            self.on_tasks(tasks, self.project_id)
        predictions = []
        for task in tasks:
            request = PredictRequest(task, config, context, front_back_check=not context)
            try:
                outcome, how = predict_shared(request, self.resources)
            except (FineposeError, GeometryError, ValueError) as exc:
                logger.warning("task %s: %s", task.get("id") if isinstance(task, dict) else "?", exc)
                if context and config.message is not None:  # say it on the labeling screen
                    text = f"finepose could not use this: {scrub(self.resources.settings, str(exc))}"
                    predictions.append({"result": message_result(config, text), "score": 0.0,
                                        "model_version": self.model_version})
                    continue
                if not context:
                    taskdata.report(self.resources.settings, task, str(exc))
                if len(tasks) == 1:
                    raise
                predictions.append([])
                continue
            logger.info("task %s: start from %s, reference from %s, score %.4f, %.2f s",
                        task.get("id"), outcome.start_source, outcome.reference_source,
                        outcome.prediction["score"], outcome.seconds)
            if context:  # an interactive call: Label Studio reads one prediction
                predictions.append(outcome.prediction)
                continue
            if how == SharedRuns.JOINED:  # a concurrent request for this task stores these predictions
                logger.info("task %s: answered to a concurrent request already: nothing more to store", task.get("id"))
                predictions.append([])
                continue
            taskdata.report(self.resources.settings, task, outcome.notes or None)
            predictions.append(outcome.stored_order() if outcome.rivals else outcome.prediction)
        return {"model_version": self.model_version, "predictions": predictions}

    def fit(self, event: str, data: dict, **kwargs) -> dict:
        """On a created/updated human annotation, refine its pose and make the refined pose the
        task's one finepose prediction (the human and refined versions both stay; a repeated
        save of the same pose stores nothing new). An annotation whose Projection or IoU no
        longer belong to its numbers (typed after they were drawn) is corrected in Label
        Studio; finepose's own correction comes back as ANNOTATION_UPDATED and is skipped."""
        if event not in REFINE_EVENTS:
            return {"status": "ignored", "event": event}
        annotation, task, project = validation.webhook_annotation_event(data)
        if annotation.get("was_cancelled"):
            return {"status": "ignored", "event": event, "reason": "the annotation was cancelled (skipped)"}
        if event == "ANNOTATION_UPDATED" and self._made_by_finepose(annotation):
            return {"status": "ignored", "event": event, "reason": "finepose's own correction of the annotation"}
        config = parse_label_config(project.get("label_config") or self.label_config)
        request = PredictRequest({**task, "annotations": [annotation]}, config, reconcile_annotation=True)
        try:
            outcome, _ = predict_shared(request, self.resources)
        except (FineposeError, GeometryError, ValueError) as exc:
            taskdata.report(self.resources.settings, task, f"refining the submitted pose failed: {exc}")
            raise
        taskdata.report(self.resources.settings, task, outcome.notes or None)
        pred = outcome.prediction
        try:
            client = self.resources.client()
            with self.resources.task_predictions.hold(task["id"]):
                kept, what = replace_predictions(client, task["id"], pred, same_prediction)
        except CredentialsError:
            raise
        except Exception as exc:  # noqa: BLE001 (requests', httpx's and the SDK's errors: unreachable, refused, timed out)
            logger.warning("task %s: storing the refined prediction failed: %r", task["id"], exc)
            raise UpstreamError(f"Label Studio at {urlparse(self.resources.settings.label_studio_url).netloc} did not "
                                f"store the refined prediction of task {task['id']}: {_upstream_reason(exc)}") from None
        logger.info("task %s: refined prediction %s %s (IoU %.4f)", task["id"], kept, what, pred["score"])
        correcting = outcome.annotation_fix is not None and isinstance(annotation.get("id"), int)
        if correcting:
            taskdata.in_background(self._correct_annotation, annotation["id"], annotation.get("result"),
                                   outcome.annotation_fix)
        return {"status": "refined" if what == "stored" else "unchanged", "task": task["id"], "prediction": kept,
                "score": pred["score"], "correcting_annotation": correcting}

    def _made_by_finepose(self, annotation: dict) -> bool:
        """Whether the annotation holds exactly the result finepose last wrote into it (its
        own correction, come back as ANNOTATION_UPDATED). Told by content, not by user: a
        small team may annotate with the account whose token the backend holds. (Another
        worker process does not know it; it then finds the pose unchanged and the
        annotation consistent, and writes nothing.)"""
        return (isinstance(annotation.get("id"), int)
                and self.resources.corrected_annotations.get(annotation["id"]) == _digest(annotation.get("result")))

    def _correct_annotation(self, annotation_id: int, seen: list, result: list) -> None:
        """Write ``result`` into the annotation, unless a person saved it again since the
        webhook ``seen`` it (their newer save then has its own webhook)."""
        seen_digest = _digest(seen)
        try:
            self.resources.corrected_annotations.put(annotation_id, _digest(result))
            written = update_annotation(self.resources.client(), annotation_id, result,
                                        unless_changed_from=lambda current: _digest(current) != seen_digest)
            logger.info("annotation %s: %s", annotation_id, "Projection and IoU made those of its numbers" if written
                        else "saved again meanwhile: left as it is")
        except Exception as exc:  # noqa: BLE001 (logged; the next save corrects it again)
            logger.warning("annotation %s: could not correct its Projection and IoU: %r", annotation_id, exc)


def _digest(result) -> str:
    """A digest of an annotation's result, whatever the order of its keys."""
    return hashlib.sha256(json.dumps(result, sort_keys=True, default=str).encode()).hexdigest()


def _upstream_reason(exc: Exception) -> str:
    """A short reason for a failed Label Studio call (its status, or the transport error's kind)."""
    status_code = getattr(exc, "status_code", None)
    if status_code is not None:
        return f"HTTP {status_code}"
    return {"ConnectError": "unreachable", "ConnectionError": "unreachable", "ConnectTimeout": "no connection in time",
            "ReadTimeout": "no answer in time"}.get(type(exc).__name__, type(exc).__name__)
