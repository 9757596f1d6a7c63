"""Where the editor reads tasks and writes annotations: Label Studio, through the backend's
credentials (``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``), never the browser's; and who an
annotator is, from the token they paste once (:mod:`.annotators`)."""

from __future__ import annotations

from ls_backend.studio import client as labelstudio


class LabelStudioSource:
    """Tasks, labeling configs and annotations of the Label Studio the backend is set up for."""

    def __init__(self, resources):
        self.resources = resources

    @property
    def client(self):
        """The process's authenticated client (a Personal Access Token is exchanged and
        renewed by :mod:`ls_backend.studio.client`; every call has its timeout)."""
        return self.resources.client()

    def task(self, task_id: int, project_id: int | None = None) -> dict:
        """The task (read without asking for a prediction when ``project_id`` is given)."""
        return labelstudio.get_task(self.client, task_id, project_id)

    def label_config(self, project_id: int) -> str:
        return labelstudio.project_label_config(self.client, project_id)

    def create_annotation(self, task_id: int, result: list, lead_time: float | None, completed_by: int) -> int:
        return labelstudio.create_annotation(self.client, task_id, result, lead_time, completed_by=completed_by)

    def annotator(self, token: str, project_id: int) -> dict:
        """Label Studio's whoami for a person's own ``token``, checked to open the project
        (:func:`ls_backend.studio.client.member_of`); AccessRefused (403) otherwise."""
        return labelstudio.member_of(self.resources.settings.label_studio_url, token, project_id)

    def next_unannotated(self, project_id: int, after: int | None) -> int | None:
        return labelstudio.next_unannotated_task(self.client, project_id, after)
