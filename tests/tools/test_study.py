"""The study without Label Studio: its arithmetic against hand-computed numbers, its folder
and key rules, and its items (the whole flow with a real Label Studio and browsers is in
tests/e2e/test_study_e2e.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ls_backend.tools.study import (
    StudyError, StudyFolder, fleiss_kappa, items_from_pose_sets, rating_summary, rating_table, shares, unblind,
)


def test_unblind_swaps_only_when_refined_is_on_the_left():
    assert [unblind(r, "right") for r in ("Worse", "Equal", "Better")] == ["Worse", "Equal", "Better"]
    assert [unblind(r, "left") for r in ("Worse", "Equal", "Better")] == ["Better", "Equal", "Worse"]
    with pytest.raises(StudyError, match="unknown rating"):
        unblind("Great", "left")
    with pytest.raises(StudyError, match="'left' or 'right'"):
        unblind("Equal", "top")


def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) as worked in most references: 10 items, 14 raters, 5 categories -> 0.210.
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                      [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa(np.array([[3, 0, 0], [0, 3, 0], [0, 0, 3]])) == pytest.approx(1.0)
    with pytest.raises(StudyError):
        fleiss_kappa(np.array([[1, 0, 0]]))


def test_summary_by_hand():
    # Two raters, three items. Item 1: refined on the right; item 2 and 3: on the left.
    raw = [("i1", "a", "Better", "right"), ("i1", "b", "Better", "right"),
           ("i2", "a", "Worse", "left"), ("i2", "b", "Equal", "left"),
           ("i3", "a", "Better", "left"), ("i3", "b", "Better", "left")]
    rows = [{"item": i, "rater": r, "rating_right_vs_left": x, "candidate_side": s, "verdict": unblind(x, s)}
            for i, r, x, s in raw]
    summary = rating_summary(rows)
    # Un-blinded: i1 Better, Better; i2 Better, Equal; i3 Worse, Worse.
    assert summary["overall"] == {"Worse": 2 / 6, "Equal": 1 / 6, "Better": 3 / 6}
    assert summary["per_rater"]["a"]["shares"] == {"Worse": 1 / 3, "Equal": 0.0, "Better": 2 / 3}
    assert summary["per_rater"]["b"]["shares"] == {"Worse": 1 / 3, "Equal": 1 / 3, "Better": 1 / 3}
    # Kappa by hand: P_i = 1, 0, 1 -> P_bar = 2/3; p = (2/6, 1/6, 3/6) -> P_e = 14/36.
    assert summary["fleiss_kappa"] == pytest.approx((2 / 3 - 14 / 36) / (1 - 14 / 36))
    low, high = summary["overall_ci95"]["Better"]
    assert low <= 0.5 <= high and high - low > 0.1
    a_low, a_high = summary["per_rater"]["a"]["ci95"]["Better"]
    assert a_low <= 2 / 3 <= a_high
    # the printed table shows every share with its interval, and kappa with its own
    table = rating_table(summary)
    assert f"50.0% [{100 * low:.0f}-{100 * high:.0f}]" in table
    assert "66.7% [" in table and "Fleiss' kappa: " in table
    k_low, k_high = summary["fleiss_kappa_ci95"]
    assert f"[{k_low:.3f}, {k_high:.3f}]" in table
    assert shares([]) == pytest.approx({"Worse": np.nan, "Equal": np.nan, "Better": np.nan}, nan_ok=True)


def test_a_study_folder_outside_what_label_studio_serves_and_never_overwritten(tmp_path):
    served = tmp_path / "ls-files"
    (served / "media").mkdir(parents=True)
    for inside in (served, served / "media", served / "media" / "x"):
        with pytest.raises(StudyError, match="may serve"):
            StudyFolder.create(inside, "s1", [served / "media", served])
    assert not (served / "s1").exists() and not (served / "media" / "s1").exists()
    folder = StudyFolder.create(tmp_path / "studies", None, [served])
    assert folder.id.startswith("study-") and folder.root.is_dir()
    folder.write_key({"study": folder.id, "items": {"item-0001": {"candidate_side": "left"}},
                      "projects": [{"project": 1, "rater": "rater 1"}]})
    assert oct(folder.key_path.stat().st_mode & 0o777) == "0o600"
    before = folder.key_path.read_bytes()
    with pytest.raises(StudyError, match="already exists"):
        StudyFolder.create(tmp_path / "studies", folder.id, [served])
    with pytest.raises(StudyError, match="already has a key"):
        folder.write_key({"items": {}, "projects": []})
    assert folder.key_path.read_bytes() == before
    assert StudyFolder.find(tmp_path / "studies", folder.id).read_key()["items"]["item-0001"]["candidate_side"] == "left"
    with pytest.raises(StudyError, match=f"no study nope in .*there are: {folder.id}"):
        StudyFolder.find(tmp_path / "studies", "nope")
    with pytest.raises(StudyError, match="study id"):
        StudyFolder(tmp_path, "../escape")


def test_pose_set_items_draw_poses_in_the_registry_frame(tmp_path, car, car_renderer):
    """Pose-set items are read by the same frame rule as the backend and evaluate: a pose
    naming no frame is read in the model's frame; one naming another frame a rotation apart is
    converted (the same picture); one a reflection apart is refused."""
    import json
    from dataclasses import replace

    from geometry.conventions import seed
    from geometry.frames import frame_matrix
    from geometry.iou import iou
    from geometry.mesh import save_mesh
    from geometry.pose import Pose
    from ls_backend.datasets.posesets import PoseRecord, write_pose_set
    from ls_backend.registry import Registry

    save_mesh(tmp_path / "car.ply", car)
    (tmp_path / "registry.json").write_text(
        json.dumps({"car": {"mesh": "car.ply", "frame": "shapenet_seed", "category": "car"}}))
    registry = Registry.load(tmp_path / "registry.json")
    pose = Pose(azimuth=35, elevation=12, theta=3, distance=1.7, focal=330, u=150, v=105, width=300, height=200)
    in_seed = replace(pose, mesh_frame=seed.MESH_FRAME)
    turned = replace(in_seed, mesh_frame=frame_matrix(np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]) @ seed.MESH_FRAME))
    turned = replace(turned, azimuth=in_seed.azimuth + 90.0)
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(images / name)
    write_pose_set(tmp_path / "human.json", [PoseRecord("a.png", "car", None, pose=pose),
                                             PoseRecord("b.png", "car", None, pose=pose),
                                             PoseRecord("c.png", "car", None, pose=pose),
                                             PoseRecord("gone.png", "car", None, pose=pose)], None)
    write_pose_set(tmp_path / "refined.json", [
        PoseRecord("a.png", "car", None, pose=pose),
        PoseRecord("b.png", "car", None, pose=turned, names_frame=True),
        PoseRecord("c.png", "car", None, pose=replace(pose, mesh_frame=np.diag([1.0, 1, -1]) @ seed.MESH_FRAME),
                   names_frame=True)], None)
    items = items_from_pose_sets(tmp_path / "human.json", tmp_path / "refined.json", images, registry)
    assert [item.image for item in items] == ["a.png", "b.png", "c.png"]  # gone.png has no photo
    photo, human, refined = items[0].load()
    assert photo.shape == (200, 300, 3)
    np.testing.assert_array_equal(registry.renderer("car").render(human), car_renderer.render(in_seed))
    _, _, refined = items[1].load()
    assert iou(registry.renderer("car").render(refined), car_renderer.render(in_seed)) > 0.999
    with pytest.raises(ValueError, match="reflection"):
        items[2].load()


# -- create and report against a stand-in Label Studio -----------------------------------------


class _Projects:
    def __init__(self, fail_import_of: int | None = None):
        self.made, self.deleted, self.imported, self.fail_import_of = [], [], {}, fail_import_of

    def create(self, **fields):
        from types import SimpleNamespace

        self.made.append(fields)
        return SimpleNamespace(id=100 + len(self.made))

    def import_tasks(self, id, request):
        from label_studio_sdk.core.api_error import ApiError

        if len(self.imported) == self.fail_import_of:
            raise ApiError(status_code=500, headers={"set-cookie": "sessionid=x"}, body="database is locked")
        self.imported[id] = request

    def delete(self, id):
        self.deleted.append(id)


class _Connection:
    url = "http://ls.test"

    def __init__(self, projects):
        self.projects = projects

    def sdk(self):
        from types import SimpleNamespace

        return SimpleNamespace(projects=self.projects)


@pytest.fixture
def study_parts(tmp_path, car_renderer, monkeypatch):
    """Six items of the toy car (the last with the same pose twice), a registry stand-in and
    uploads that only name their files."""
    from dataclasses import replace
    from types import SimpleNamespace

    from geometry.pose import Pose
    from ls_backend.tools.study import StudyItem
    from ls_backend.tools.study import create as create_module

    monkeypatch.setattr(create_module, "give_files", lambda connection, project, files, folders, root:
                        {p: f"/data/upload/{project}/x-{p.name}" for p in files})
    pose = Pose(azimuth=35, elevation=12, theta=3, distance=1.7, focal=330, u=150, v=105, width=300, height=200)
    photo = np.full((200, 300, 3), 90, np.uint8)

    def item(i, same=False):
        other = pose if same else replace(pose, azimuth=35 + 3 + i)
        return StudyItem(f"photo{i}.png", "car", lambda: (photo, pose, other))

    items = [item(i) for i in range(5)] + [item(5, same=True)]
    return items, SimpleNamespace(renderer=lambda model: car_renderer), tmp_path / "studies"


def test_create_draws_balanced_sides_from_its_seed_and_passes_over_identical_outlines(study_parts):
    from ls_backend.tools.study import anonymous_raters, create_study

    items, registry, studies = study_parts
    made = []
    for _ in range(2):
        projects = _Projects()
        made.append(create_study(_Connection(projects), items, registry, anonymous_raters(2), studies, 5, seed_value=7))
    keys = [StudyFolder.find(studies, m["study"]).read_key() for m in made]
    assert made[0]["study"] != made[1]["study"] and [m["seed"] for m in made] == [7, 7]
    # the seed gives the same items, sides and orders; the pictures' names are new each time
    assert [[(i["image"], i["candidate_side"]) for i in k["items"].values()] for k in keys][0] == \
        [[(i["image"], i["candidate_side"]) for i in k["items"].values()] for k in keys][1]
    assert [p["order"] for p in keys[0]["projects"]] == [p["order"] for p in keys[1]["projects"]]
    assert {i["picture"] for i in keys[0]["items"].values()}.isdisjoint(i["picture"] for i in keys[1]["items"].values())
    sides = [i["candidate_side"] for i in keys[0]["items"].values()]
    assert sorted([sides.count("left"), sides.count("right")]) == [2, 3]
    # the item whose two poses draw one outline is not shown, and said
    assert "photo5.png" not in {i["image"] for i in keys[0]["items"].values()}
    assert all(p["reason"].startswith("both poses draw") for p in made[0]["passed_over"])
    # each rater's project holds every item once, in its own order
    orders = [p["order"] for p in keys[0]["projects"]]
    assert sorted(orders[0]) == sorted(orders[1]) == sorted(keys[0]["items"])
    assert [sorted(t["data"]["item"] for t in tasks) for tasks in projects.imported.values()] == [sorted(keys[1]["items"])] * 2
    assert all(set(t["data"]) == {"pair", "item"} for tasks in projects.imported.values() for t in tasks)


def test_create_keeps_nothing_when_a_step_fails(study_parts, tmp_path):
    from ls_backend.errors import UpstreamError
    from ls_backend.tools.study import anonymous_raters, create_study

    items, registry, studies = study_parts
    projects = _Projects(fail_import_of=1)  # the second rater's import is refused
    with pytest.raises(UpstreamError, match=r"database is locked.*nothing of study .* was kept: projects 101, 102 deleted"):
        create_study(_Connection(projects), items, registry, anonymous_raters(2), studies, 3, study_id="s1")
    assert projects.deleted == [101, 102] and not (studies / "s1").exists()
    for bad, words in (({"sample": 0}, "at least 1"), ({"seed_value": -1}, "--seed"), ({"sample": 7}, "only 6")):
        kwargs = {"sample": 3, **bad}
        sample = kwargs.pop("sample")
        with pytest.raises(StudyError, match=words):
            create_study(_Connection(_Projects()), items, registry, anonymous_raters(1), studies, sample,
                         study_id="s2", **kwargs)
        assert not (studies / "s2").exists()
    with pytest.raises(StudyError, match="only 1 of 2 photos .* both poses draw the same outline"):
        create_study(_Connection(_Projects()), [items[5], items[0]], registry, anonymous_raters(1), studies, 2,
                     study_id="s3")
    assert not (studies / "s3").exists()


def test_report_counts_each_raters_newest_rating_in_their_own_project():
    from types import SimpleNamespace

    from ls_backend.tools.study import collect_ratings

    def annotation(id, by, choice):
        return {"id": id, "completed_by": by, "was_cancelled": False,
                "result": [{"type": "choices", "value": {"choices": [choice]}}]}

    tasks = {1: [{"id": 11, "data": {"item": "item-0001"}, "annotations": [annotation(1, 7, "Worse"), annotation(5, 7, "Better")]},
                 {"id": 12, "data": {"item": "item-0002"}, "annotations": [annotation(2, 8, "Equal")]},
                 {"id": 13, "data": {"item": "gone"}, "annotations": [annotation(3, 7, "Equal")]}],
             2: [{"id": 21, "data": {"item": "item-0001"}, "annotations": [annotation(4, 8, "Worse")]}]}
    client = SimpleNamespace(
        users=SimpleNamespace(list=lambda: [SimpleNamespace(id=7, email="a@x"), SimpleNamespace(id=8, email="b@x")]),
        tasks=SimpleNamespace(list=lambda project, fields: tasks[project]))
    key = {"study": "s", "items": {"item-0001": {"candidate_side": "left"}, "item-0002": {"candidate_side": "right"}},
           "projects": [{"project": 1, "rater": "a@x", "rater_id": 7}, {"project": 2, "rater": "b@x", "rater_id": 8}]}
    rows, left_out = collect_ratings(client, key)
    assert [(r["rater"], r["item"], r["rating_right_vs_left"], r["verdict"]) for r in rows] == [
        ("b@x", "item-0001", "Worse", "Better"), ("a@x", "item-0001", "Better", "Worse")]
    assert [(x["task"], x["by"]) for x in left_out] == [(12, "b@x"), (13, None)]


def test_malformed_keys_and_undefined_kappa_are_said(tmp_path):
    import json

    folder = StudyFolder.create(tmp_path, "s", [])
    good = {"study": "s", "items": {"item-0001": {"candidate_side": "left"}}, "projects": [{"project": 1, "rater": "r"}]}
    for broken, words in (({**good, "projects": [1]}, "project entry 1"), ({**good, "projects": [{}]}, "project entry"),
                          ({**good, "items": {"item-0001": {}}}, "candidate side"), ({**good, "study": None}, "study id")):
        folder.key_path.write_text(json.dumps(broken))
        with pytest.raises(StudyError, match=words):
            folder.read_key()
    # every rating Equal: chance agreement is 1 and kappa undefined, not 1.0
    rows = [{"item": f"i{i}", "rater": r, "verdict": "Equal"} for i in range(3) for r in "ab"]
    summary = rating_summary(rows)
    assert summary["fleiss_kappa"] is None and "Fleiss' kappa: n/a" in rating_table(summary)
