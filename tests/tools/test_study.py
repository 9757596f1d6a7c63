"""The study's arithmetic, checked against hand-computed numbers (the end-to-end flow with a
real Label Studio is in test_label_studio_e2e.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ls_backend.tools.study import StudyError, fleiss_kappa, rating_summary, shares, unblind


def test_unblind_swaps_only_when_refined_is_on_the_left():
    assert [unblind(r, "right") for r in ("Worse", "Equal", "Better")] == ["Worse", "Equal", "Better"]
    assert [unblind(r, "left") for r in ("Worse", "Equal", "Better")] == ["Better", "Equal", "Worse"]
    with pytest.raises(StudyError, match="unknown rating"):
        unblind("Great", "left")
    with pytest.raises(StudyError, match="left' or 'right"):
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
    rows = [{"item": i, "rater": r, "rating_right_vs_left": x, "refined_side": s, "refined_vs_human": unblind(x, s)}
            for i, r, x, s in raw]
    summary = rating_summary(rows)
    # Un-blinded: i1 Better, Better; i2 Better, Equal; i3 Worse, Worse.
    assert summary["overall"] == {"Worse": 2 / 6, "Equal": 1 / 6, "Better": 3 / 6}
    assert summary["per_rater"]["a"] == {"Worse": 1 / 3, "Equal": 0.0, "Better": 2 / 3}
    assert summary["per_rater"]["b"] == {"Worse": 1 / 3, "Equal": 1 / 3, "Better": 1 / 3}
    # Kappa by hand: P_i = 1, 0, 1 -> P_bar = 2/3; p = (2/6, 1/6, 3/6) -> P_e = 14/36.
    assert summary["fleiss_kappa"] == pytest.approx((2 / 3 - 14 / 36) / (1 - 14 / 36))
    low, high = summary["overall_ci95"]["Better"]
    assert low <= 0.5 <= high
    assert shares([]) == pytest.approx({"Worse": np.nan, "Equal": np.nan, "Better": np.nan}, nan_ok=True)


def test_overlays_draw_poses_in_the_registry_frame(tmp_path, car, car_renderer, monkeypatch):
    """The study draws poses by the same frame rule as the backend and evaluate: a pose naming
    none is read in the model's frame; one naming another frame a rotation apart is converted
    (the same picture); one a reflection apart is refused."""
    import json
    from dataclasses import replace

    from geometry.conventions import seed
    from geometry.frames import frame_matrix
    from geometry.mesh import save_mesh
    from geometry.pose import Pose
    from ls_backend.tools import study
    from ls_backend.datasets.posesets import PoseRecord
    from ls_backend.registry import Registry

    save_mesh(tmp_path / "car.ply", car)
    (tmp_path / "registry.json").write_text(
        json.dumps({"car": {"mesh": "car.ply", "frame": "shapenet_seed", "category": "car"}}))
    registry = Registry.load(tmp_path / "registry.json")
    pose = Pose(azimuth=35, elevation=12, theta=3, distance=1.7, focal=330, u=150, v=105, width=300, height=200)
    drawn = []
    monkeypatch.setattr(study, "save_overlay", lambda out, rgb, masks: drawn.append(masks["model"]))
    photo = np.zeros((200, 300, 3), np.uint8)
    in_seed = replace(pose, mesh_frame=seed.MESH_FRAME)
    study._render_overlay(photo, PoseRecord("a.jpg", "car", None, pose=pose), registry, tmp_path / "a.png")
    np.testing.assert_array_equal(drawn[0], car_renderer.render(in_seed))
    # the seed frame turned by 90 degrees about z: a rotation apart, converted, same silhouette
    turned = replace(in_seed, mesh_frame=frame_matrix(np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]) @ seed.MESH_FRAME))
    turned_pose = replace(turned, azimuth=in_seed.azimuth + 90.0)
    assert car_renderer.render(turned_pose).sum() > 0
    study._render_overlay(photo, PoseRecord("a.jpg", "car", None, pose=turned_pose, names_frame=True), registry,
                          tmp_path / "b.png")
    from geometry.iou import iou
    assert iou(drawn[1], car_renderer.render(turned_pose)) > 0.999
    named = replace(pose, mesh_frame=np.eye(3))
    with pytest.raises(ValueError, match="reflection"):
        study._render_overlay(photo, PoseRecord("a.jpg", "car", None, pose=named, names_frame=True), registry,
                              tmp_path / "c.png")
