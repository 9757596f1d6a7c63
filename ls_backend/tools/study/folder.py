"""Where a study lives: its id, its private folder and its key.

Each study has an id (``study-YYYYMMDD-HHMMSS-xxxx`` unless given) and a private folder
``<studies>/<id>/`` holding ``key.json`` (which side shows the candidate pose, per item, and
the seed that drew it) and, when the overlays are uploaded, ``overlays/``. The folder must lie
outside every folder Label Studio may serve (the media root the overlays go to, Label Studio's
local-files document root): a key that can be fetched un-blinds the study. Nothing of an
existing study is ever overwritten: creating a study whose folder exists is refused.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path

from ls_backend.tools.study.ratings import SIDES, StudyError

STUDY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
KEY_FILE = "key.json"


def new_study_id() -> str:
    """A fresh id: the local time and 4 random hex digits (two studies in one second differ)."""
    return f"study-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def checked_id(study_id: str) -> str:
    if not isinstance(study_id, str) or not STUDY_ID.fullmatch(study_id):
        raise StudyError(f"study id {study_id!r}: use letters, digits, '.', '_' and '-' (at most 80)")
    return study_id


class StudyFolder:
    """A study's private folder ``<studies>/<id>``."""

    def __init__(self, studies: Path, study_id: str):
        self.id = checked_id(study_id)
        self.root = Path(studies) / self.id

    @property
    def key_path(self) -> Path:
        return self.root / KEY_FILE

    @classmethod
    def create(cls, studies: Path, study_id: str | None, served: list[Path]) -> "StudyFolder":
        """A new study's folder; refused when it would lie inside a ``served`` folder or when
        the study already exists (its files are left as they are)."""
        folder = cls(studies, study_id or new_study_id())
        private = folder.root.resolve()
        for root in served:
            root = Path(root).resolve()
            if private == root or private.is_relative_to(root):
                raise StudyError(f"the study folder {folder.root} lies inside {root}, which Label Studio may serve: "
                                 "raters could fetch the key; choose --studies outside it")
        try:
            folder.root.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise StudyError(f"study {folder.id} already exists ({folder.root}); it is left as it is: "
                             "give another --id, or none for a new one") from None
        os.chmod(folder.root, 0o700)
        return folder

    @classmethod
    def find(cls, studies: Path, study_id: str) -> "StudyFolder":
        folder = cls(studies, study_id)
        if not folder.key_path.is_file():
            known = sorted(p.parent.name for p in Path(studies).glob(f"*/{KEY_FILE}")) if Path(studies).is_dir() else []
            raise StudyError(f"no study {study_id} in {studies}" + (f"; there are: {', '.join(known)}" if known else ""))
        return folder

    def write_key(self, key: dict) -> None:
        """Write the key once (owner-only permissions); refused if one is there."""
        try:
            with open(os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                json.dump(key, f, indent=1)
        except FileExistsError:
            raise StudyError(f"study {self.id} already has a key; it is left as it is") from None

    def read_key(self) -> dict:
        try:
            key = json.loads(self.key_path.read_text())
        except (OSError, ValueError) as exc:
            raise StudyError(f"the key of study {self.id} is unreadable: {self.key_path} ({exc})") from None
        problem = _key_problem(key)
        if problem:
            raise StudyError(f"the key of study {self.id} ({self.key_path}) is not a finepose study key: {problem}")
        return key


def _key_problem(key) -> str:
    """What makes ``key`` unusable ("" when nothing does)."""
    if not isinstance(key, dict) or not isinstance(key.get("study"), str):
        return "no study id"
    items, projects = key.get("items"), key.get("projects")
    if not isinstance(items, dict) or not items:
        return "no items"
    for name, item in items.items():
        if not isinstance(item, dict) or item.get("candidate_side") not in SIDES:
            return f"item {name!r} has no candidate side"
    if not isinstance(projects, list) or not projects:
        return "no projects"
    for project in projects:
        if not isinstance(project, dict) or not isinstance(project.get("project"), int) \
                or not isinstance(project.get("rater"), str):
            return f"project entry {project!r} lacks its project id or rater"
    return ""
