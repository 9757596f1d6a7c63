"""``study create``: a blind rating study in Label Studio, one project per rater.

For ``sample`` items drawn at random, the model's projection is drawn over the photo at the
baseline and at the candidate pose in the same colour, and the two are put side by side in
one picture, the candidate's side drawn at random (``templates/satisfaction_study.xml``: is
the RIGHT half Worse / Equal / Better than the LEFT one?).

**Blind by construction.** Pictures get random names (16 hex digits), task data holds only
a picture's URL and an opaque item id, and which side shows the candidate is written only to
the study's key, in its private folder outside anything Label Studio serves
(:class:`~ls_backend.tools.study.folder.StudyFolder`). The seed that drew the sample, the
sides and the orders is random unless given, and recorded in the key (a known default seed
would let anyone recompute the sides).

**Independent raters.** Label Studio Community shows a task's other annotations to whoever
opens it, so each rater gets a project of their own holding the same items in their own
random order (``maximum_annotations=1``); the report merges them. Community has no
per-project membership: every member of the organization can open every project, so a rater
who goes looking can find another's project; the instructions ask them not to, and the
project titles name whose they are.

**Media.** By default the overlays are uploaded to each project (works on Label Studio's
defaults); with ``media_root`` (a folder under Label Studio's local-files document root) they
are written to ``<media_root>/<study id>/`` and each project gets it as Local Files storage.
"""

from __future__ import annotations

import datetime
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.io import imsave
from tqdm import tqdm

from geometry.errors import GeometryError
from geometry.overlay import draw_overlay, side_by_side

from ls_backend.errors import FineposeError
from ls_backend.studio.client import answered, users_by_email
from ls_backend.studio.project_media import check_under_document_root, give_files
from ls_backend.templates import SATISFACTION_STUDY, read_template
from ls_backend.tools.study.folder import StudyFolder
from ls_backend.tools.study.items import StudyItem
from ls_backend.tools.study.ratings import SIDES, StudyError

INSTRUCTIONS = (
    "<p>Each task shows one photo twice, side by side, with the outline of a 3D model drawn over "
    "each. Rate the <b>right</b> half against the <b>left</b> one: does its outline fit the object worse, equally "
    "well, or better? (keys 1, 2, 3, then Submit).</p><p>This project is yours alone: the other raters "
    "rate the same pictures in their own projects. Please do not open theirs, and do not discuss "
    "pictures until everyone is done.</p>"
)


@dataclass(frozen=True)
class Rater:
    """Who rates one project: a Label Studio user (``email`` and ``user_id``) or, for
    anonymous projects, a label such as ``rater 2`` (``user_id`` None)."""

    label: str
    user_id: int | None = None


def raters_by_email(client, emails: list[str]) -> list[Rater]:
    """The organization's users with these emails; StudyError naming any that is not one."""
    users = users_by_email(client)
    missing = [e for e in emails if e.lower() not in users]
    if missing:
        raise StudyError(f"no Label Studio user has the email {', '.join(missing)}: invite them (Organization -> "
                         "Add People), let them sign up, then run again")
    if len({e.lower() for e in emails}) != len(emails):
        raise StudyError("a rater is named twice")
    return [Rater(e, users[e.lower()]) for e in emails]


def anonymous_raters(count: int) -> list[Rater]:
    if count < 1:
        raise StudyError("a study needs at least one rater")
    return [Rater(f"rater {i + 1}") for i in range(count)]


def create_study(connection, items: list[StudyItem], registry, raters: list[Rater], studies: Path, sample: int, *,
                 media_root: Path | None = None, document_root: Path | None = None, study_id: str | None = None,
                 seed_value: int | None = None, title: str = "finepose rating study",
                 names: tuple[str, str] = ("human", "refined"), source: dict | None = None) -> dict:
    """Draw the items, render the pictures, create one project per rater, write the key.
    ``names``: what the baseline and the candidate are called in the report.

    All or nothing: when any step fails, the projects made so far are deleted and the study's
    folders removed, so the error can be fixed and the command run again."""
    if not raters:
        raise StudyError("a study needs at least one rater")
    if sample < 1:
        raise StudyError(f"--sample must be at least 1, got {sample}")
    if len(items) < sample:
        raise StudyError(f"only {len(items)} photos have both poses; asked for {sample}")
    if seed_value is not None and not 0 <= int(seed_value) < 2**63:
        raise StudyError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed_value}")
    seed_value = secrets.randbits(63) if seed_value is None else int(seed_value)
    rng = np.random.default_rng(seed_value)
    if media_root is not None:
        check_under_document_root(media_root, document_root)
    folder = StudyFolder.create(studies, study_id, [p for p in (media_root, document_root) if p is not None])
    overlays = Path(media_root) / folder.id if media_root is not None else folder.root / "overlays"
    projects: list[dict] = []
    try:
        try:
            overlays.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            overlays = None  # another study's: left alone
            raise StudyError(f"{Path(media_root) / folder.id} exists: another study's pictures are left as they are; "
                             "give another --id") from None
        drawn, passed_over = _draw_and_render(items, registry, sample, rng, overlays)
        client = connection.sdk()
        config = read_template(SATISFACTION_STUDY)
        by_item = {d["item"]: d for d in drawn}
        for rater in raters:
            order = [drawn[i]["item"] for i in rng.permutation(len(drawn))]
            with answered("the project list"):
                project = client.projects.create(
                    title=f"{rater.label}: {title}"[:50], label_config=config, maximum_annotations=1,
                    description=f"Study {folder.id}: the ratings of {rater.label} only.",
                    expert_instruction=INSTRUCTIONS, show_instruction=True, show_skip_button=False)
            projects.append({"project": project.id, "rater": rater.label, "rater_id": rater.user_id, "order": order})
            urls = {p.name: url for p, url in give_files(connection, project.id, sorted(overlays.glob("*.png")),
                                                             [overlays] if media_root is not None else None,
                                                             document_root).items()}
            with answered(f"project {project.id}"):
                client.projects.import_tasks(id=project.id, request=[
                    {"data": {"pair": urls[by_item[i]["picture"]], "item": i}} for i in order])
        key = {
            "study": folder.id,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seed": seed_value, "baseline": names[0], "candidate": names[1], "source": source or {},
            "media": "local files" if media_root is not None else "upload", "overlays": str(overlays),
            "items": {d["item"]: {k: d[k] for k in ("image", "model", "task", "candidate_side", "picture")} for d in drawn},
            "projects": projects,
        }
        folder.write_key(key)
    except BaseException as exc:
        undone = _undo(connection, projects, folder.root, overlays)
        if isinstance(exc, FineposeError) and projects:
            raise type(exc)(f"{exc} (nothing of study {folder.id} was kept: {undone})") from None
        raise
    return {"study": folder.id, "key": str(folder.key_path), "items": len(drawn), "seed": seed_value,
            "projects": [{"project": p["project"], "rater": p["rater"],
                          "url": f"{connection.url}/projects/{p['project']}/data?labeling=1"} for p in projects],
            "passed_over": passed_over}


def _undo(connection, projects: list[dict], folder: Path, overlays: Path | None) -> str:
    """Delete the projects a failed create made and its folders; says what was deleted."""
    deleted = []
    for project in projects:
        try:
            connection.sdk().projects.delete(id=project["project"])
            deleted.append(str(project["project"]))
        except Exception:  # noqa: BLE001 (Label Studio gone meanwhile: said below, never hides the first error)
            pass
    shutil.rmtree(folder, ignore_errors=True)
    if overlays is not None:
        shutil.rmtree(overlays, ignore_errors=True)
    kept = [str(p["project"]) for p in projects if str(p["project"]) not in deleted]
    return (f"projects {', '.join(deleted)} deleted" if deleted else "no project made") + \
        (f"; projects {', '.join(kept)} could not be deleted: delete them in Label Studio" if kept else "")


def _draw_and_render(items: list[StudyItem], registry, sample: int, rng, overlays: Path) -> tuple[list[dict], list[dict]]:
    """Take items in a random order until ``sample`` of them load and draw two different
    outlines; each drawn one gets an item id, the candidate's side (as many on the left as on
    the right, shuffled) and its picture (a random name)."""
    drawn, passed_over = [], []
    sides = rng.permutation(np.resize(np.array(SIDES), sample))  # as many left as right (+-1), shuffled
    progress = tqdm(total=sample, desc="study pictures", unit="item", disable=None)  # silent off a terminal
    for index in rng.permutation(len(items)):
        if len(drawn) == sample:
            break
        item = items[index]
        try:
            photo, baseline, candidate = item.load()
            masks = {"baseline": registry.renderer(item.model).render(baseline),
                     "candidate": registry.renderer(item.model).render(candidate)}
        except (FineposeError, GeometryError, ValueError, OSError) as exc:
            passed_over.append({"image": item.image, "task": item.task, "reason": str(exc)})
            continue
        if np.array_equal(masks["baseline"], masks["candidate"]):
            passed_over.append({"image": item.image, "task": item.task,
                                "reason": "both poses draw the same outline: nothing to compare"})
            continue
        candidate_side = str(sides[len(drawn)])
        left, right = ("baseline", "candidate") if candidate_side == "right" else ("candidate", "baseline")
        name = f"{secrets.token_hex(8)}.png"
        imsave(overlays / name, side_by_side(draw_overlay(photo, {"model": masks[left]}),
                                             draw_overlay(photo, {"model": masks[right]})), check_contrast=False)
        drawn.append({"item": f"item-{len(drawn) + 1:04d}", "image": item.image, "model": item.model,
                      "task": item.task, "candidate_side": candidate_side, "picture": name})
        progress.update()
    progress.close()
    if len(drawn) < sample:
        raise StudyError(f"only {len(drawn)} of {len(items)} photos could be drawn at both poses; asked for {sample} "
                         f"(first reason: {passed_over[0]['reason'] if passed_over else 'none'})")
    return drawn, passed_over
