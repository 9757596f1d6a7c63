"""``study report``: read every rater project of a study, un-blind, summarise.

Each rating counts once per rater and item: the newest one. In a project made for a named
rater, an annotation by anyone else is left out (listed under ``left_out`` with why), so a
person who opened another's project cannot add to or change their ratings. In anonymous
projects (``--raters N``) a rating counts for the Label Studio user who made it, wherever
they made it. A task whose data no longer names one of the study's items is left out too.
"""

from __future__ import annotations

from pathlib import Path

from ls_backend.studio.client import answered, project_tasks, users_by_email
from ls_backend.tools.study.folder import StudyFolder
from ls_backend.tools.study.ratings import StudyError, rating_summary, unblind, write_report


def collect_ratings(client, key: dict) -> tuple[list[dict], list[dict]]:
    """(rows, left out): one row per rater and item (item, rater, project, task, the raw
    rating of right vs left, the candidate's side, the verdict of candidate vs baseline)."""
    emails = {user_id: email for email, user_id in users_by_email(client).items()}
    newest: dict[tuple[str, str], tuple[int, dict]] = {}
    left_out = []
    for project in key["projects"]:
        with answered(f"project {project['project']} of study {key.get('study')}"):
            tasks = list(project_tasks(client, project["project"]))
        for task in tasks:
            item = (task.get("data") or {}).get("item")
            if item not in key["items"]:
                if task.get("annotations"):
                    left_out.append({"project": project["project"], "task": task["id"], "by": None,
                                     "reason": f"item {item!r} is not one of the study's"})
                continue
            for annotation in task.get("annotations") or []:
                choices = [r["value"]["choices"][0] for r in annotation.get("result") or []
                           if r.get("type") == "choices" and (r.get("value") or {}).get("choices")]
                if annotation.get("was_cancelled") or not choices:
                    continue
                by = annotation.get("completed_by")
                if project.get("rater_id") is not None and by != project["rater_id"]:
                    left_out.append({"project": project["project"], "task": task["id"], "by": emails.get(by, by),
                                     "reason": f"rated in {project['rater']}'s project by someone else"})
                    continue
                rater = project["rater"] if project.get("rater_id") is not None else str(emails.get(by, f"user {by}"))
                side = key["items"][item]["candidate_side"]
                row = {"item": item, "rater": rater, "project": project["project"], "task": task["id"],
                       "rating_right_vs_left": choices[0], "candidate_side": side, "verdict": unblind(choices[0], side)}
                seen = newest.get((rater, item))
                if seen is None or annotation["id"] > seen[0]:
                    newest[(rater, item)] = (annotation["id"], row)
    rows = [row for _, row in sorted(newest.values(), key=lambda found: found[0])]
    if not rows:
        raise StudyError(f"study {key.get('study')} has no ratings yet")
    return rows, left_out


def report_study(client, folder: StudyFolder, out: Path, seed_value: int = 0) -> dict:
    """Un-blind and summarise a study's ratings; write ``ratings.csv``, ``summary.json``,
    ``ratings.png`` into ``out``. Returns the summary (with the sides' names)."""
    key = folder.read_key()
    rows, left_out = collect_ratings(client, key)
    summary = {"study": key["study"], "candidate": key.get("candidate", "refined"),
               "baseline": key.get("baseline", "human"), **rating_summary(rows, seed_value), "left_out": left_out}
    write_report(rows, summary, out, summary["candidate"], summary["baseline"])
    return summary
