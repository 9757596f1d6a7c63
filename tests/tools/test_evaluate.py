"""`finepose evaluate` (ls_backend/evaluate.py): IoUs known exactly from masks rendered at
known poses of the procedural car."""

import csv
import json
import pickle
from dataclasses import replace

import numpy as np
import pytest

from geometry.conventions import seed
from geometry.frames import frame_matrix
from geometry.masks import MaskError, write_mask
from geometry.pose import Pose
from ls_backend.cli.main import build_parser
from ls_backend.tools import evaluate
from ls_backend.datasets.posesets import PoseRecord, load_pose_set, write_pose_set
from ls_backend.registry import Registry

TRUTH = {
    "a.jpg": Pose(azimuth=35, elevation=12, theta=3, distance=1.7, focal=330, u=150, v=105, width=300, height=200),
    "b.jpg": Pose(azimuth=-120, elevation=8, theta=-2, distance=2.0, focal=300, u=140, v=95, width=300, height=200),
    "c.jpg": Pose(azimuth=80, elevation=20, theta=0, distance=1.9, focal=320, u=155, v=100, width=300, height=200),
}
SHIFT_PX = {"a.jpg": 6, "b.jpg": 3, "c.jpg": 10}
MASK_SIZE = {"a.jpg": (300, 200), "b.jpg": (600, 400), "c.jpg": (300, 200)}  # b: mask at twice the pose's size


@pytest.fixture
def car_obj(tmp_path, car):
    import open3d as o3d

    path = tmp_path / "car.obj"
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(car.vertices), o3d.utility.Vector3iVector(car.triangles)
    )
    assert o3d.io.write_triangle_mesh(str(path), mesh)
    return path


@pytest.fixture
def scene(tmp_path, car_renderer):
    """Masks rendered at the true poses; a true and a u-shifted pose set; the expected IoUs of
    the shifted set computed from the true masks translated by whole pixels."""
    masks = tmp_path / "masks"
    masks.mkdir()
    expected = {}
    for image, pose in TRUTH.items():
        width, height = MASK_SIZE[image]
        mask = car_renderer.render(pose.rescaled(width, height))
        write_mask(masks / image.replace(".jpg", ".png"), mask)
        dx = SHIFT_PX[image] * width // pose.width  # the shift in mask pixels
        assert not mask[:, -dx:].any()  # the translated silhouette stays inside the image
        moved = np.roll(mask, dx, axis=1)
        expected[image] = np.count_nonzero(mask & moved) / np.count_nonzero(mask | moved)
    records = [PoseRecord(i, "car", "test", pose=p) for i, p in TRUTH.items()]
    shifted = [PoseRecord(i, "car", "test", pose=replace(p, u=p.u + SHIFT_PX[i])) for i, p in TRUTH.items()]
    write_pose_set(tmp_path / "truth.json", records, None)
    write_pose_set(tmp_path / "shifted.json", shifted, None)
    return masks, expected


def run_evaluate(*argv):
    args = build_parser().parse_args(["evaluate", *map(str, argv)])
    args.func(args)


def test_true_poses_score_one_and_shifted_poses_their_exact_iou(tmp_path, scene, car_obj, capsys):
    masks, expected = scene
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"car": {"mesh": car_obj.name, "frame": "pascal3d", "category": "car"}}))  # relative path
    out = tmp_path / "out"
    run_evaluate(
        "--masks",
        masks,
        "--set",
        f"shifted={tmp_path / 'shifted.json'}",
        "--set",
        f"truth={tmp_path / 'truth.json'}",
        "--registry",
        registry,
        "--out",
        out,
        "--seed",
        "1",
    )
    table = capsys.readouterr().out
    assert "Average IoUs" in table and "100.0% ± 0.0%" in table

    with open(out / "per_image.csv") as f:
        rows = {r["image"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["a", "b", "c"]
    for image, iou in expected.items():
        row = rows[image.removesuffix(".jpg")]
        assert float(row["truth_iou"]) == 1.0
        assert float(row["shifted_iou"]) == pytest.approx(iou, abs=1e-12)
        assert (int(row["mask_width"]), int(row["mask_height"])) == MASK_SIZE[image]

    summary = json.loads((out / "evaluation.json").read_text())
    assert summary["sets"]["truth"]["mean"] == 1.0
    assert summary["sets"]["shifted"]["mean"] == pytest.approx(np.mean(list(expected.values())))
    assert summary["sets"]["shifted"]["std"] == pytest.approx(np.std(list(expected.values()), ddof=1))
    pair = summary["pairs"][0]
    assert (pair["a"], pair["b"]) == ("shifted", "truth")
    gains = 1.0 - np.array(list(expected.values()))
    assert pair["mean_difference"] == pytest.approx(gains.mean())
    assert gains.min() <= pair["ci95"][0] <= pair["mean_difference"] <= pair["ci95"][1] <= gains.max()
    assert (pair["share_b_better"], pair["share_equal"], pair["share_b_worse"]) == (1.0, 0.0, 0.0)
    assert (out / "iou_histogram.png").read_bytes()[:4] == b"\x89PNG"


def test_release_pickle_set_and_mesh_frame_from_the_registry(tmp_path, car_renderer, car_obj, scene):
    masks, _ = scene
    records = {}
    for image, pose in TRUTH.items():
        width, height = MASK_SIZE[image]
        in_seed_frame = replace(pose, mesh_frame=seed.MESH_FRAME)
        write_mask(masks / image.replace(".jpg", ".png"), car_renderer.render(in_seed_frame.rescaled(width, height)))
        records[image] = {**seed.from_pose(in_seed_frame, width, height), "model_id": "m1"}
    with open(tmp_path / "test_anno.pkl", "wb") as f:
        pickle.dump(records, f)
    registry = tmp_path / "registry.json"
    registry.write_text(
        json.dumps(
            {
                "m1": {"mesh": str(car_obj), "frame": "shapenet_seed", "category": "car"},
                "car": {"mesh": str(car_obj), "frame": "shapenet_seed", "category": "car"},
            }
        )
    )
    evaluation = evaluate.evaluate(
        evaluate.MaskFolder(masks),
        {"release": load_pose_set(tmp_path / "test_anno.pkl"), "shifted": load_pose_set(tmp_path / "shifted.json")},
        Registry.load(registry),
    )
    assert np.all(evaluation.ious["release"] > 0.999)
    # the canonical set names no frame: its numbers are read in the model's (mirrored) frame
    assert np.all(evaluation.ious["shifted"] < 0.99)


def test_poses_are_expressed_in_the_registry_frame_converted_or_refused(tmp_path, car_renderer, car_obj):
    """One rule with the backend (geometry.frames.pose_in_model_frame): a pose naming another
    frame is converted into the model's when the frames differ by a rotation, refused naming
    both when they differ by a reflection; a pose naming none is read in the model's frame."""
    pose = TRUTH["a.jpg"]
    in_shapenet = replace(pose, mesh_frame=frame_matrix("shapenet"))
    masks = tmp_path / "masks"
    masks.mkdir()
    write_mask(masks / "a.png", car_renderer.render(in_shapenet))
    write_pose_set(tmp_path / "named.json", [PoseRecord("a.jpg", "car", None, pose=in_shapenet)], None)
    write_pose_set(tmp_path / "unnamed.json", [PoseRecord("a.jpg", "car", None, pose=pose)], None)
    sets = {name: load_pose_set(tmp_path / name) for name in ("named.json", "unnamed.json")}
    assert [s["a.jpg"].frame_fixed for s in sets.values()] == [True, False]
    registry = tmp_path / "registry.json"
    # the model in pascal3d's frame: the named pose is converted (a rotation apart) and still
    # draws the same silhouette; the unnamed one is read in pascal3d's frame: another picture
    registry.write_text(json.dumps({"car": {"mesh": str(car_obj), "frame": "pascal3d", "category": "car"}}))
    ious = evaluate.evaluate(evaluate.MaskFolder(masks), sets, Registry.load(registry)).ious
    assert ious["named.json"][0] > 0.999
    assert ious["unnamed.json"][0] < 0.99
    # the model in the release's mirrored frame: the named pose would show it mirrored: refused
    registry.write_text(json.dumps({"car": {"mesh": str(car_obj), "frame": "shapenet_seed", "category": "car"}}))
    with pytest.raises(ValueError, match=r"mesh frame 'shapenet'.*'shapenet_seed'.*reflection"):
        evaluate.evaluate(evaluate.MaskFolder(masks), sets, Registry.load(registry))


def test_masks_may_be_any_mapping(car_renderer, car):
    pose = TRUTH["a.jpg"]
    mask = car_renderer.render(pose)
    sets = {
        "x": {"a.jpg": PoseRecord("a.jpg", None, None, pose=pose)},
        "y": {"a": PoseRecord("a", None, None, pose=replace(pose, azimuth=pose.azimuth + 20))},
    }

    class OneMesh(Registry):
        def renderer(self, model_id):
            return car_renderer

    result = evaluate.evaluate({"a": mask}, sets, OneMesh.single("unused.obj"))
    assert result.ious["x"][0] == 1.0
    assert result.ious["y"][0] == pytest.approx(
        np.count_nonzero(mask & car_renderer.render(sets["y"]["a"].pose))
        / np.count_nonzero(mask | car_renderer.render(sets["y"]["a"].pose))
    )


def test_bad_inputs_are_named(tmp_path, scene, car_obj):
    masks, _ = scene
    truth, shifted = f"truth={tmp_path / 'truth.json'}", f"shifted={tmp_path / 'shifted.json'}"
    out = tmp_path / "out"
    partial = [PoseRecord("a.jpg", "car", None, pose=TRUTH["a.jpg"])]
    write_pose_set(tmp_path / "partial.json", partial, None)
    with pytest.raises(ValueError, match=r"'partial' has no pose for 2 of 3 evaluated images: 'b', 'c'"):
        run_evaluate(
            "--masks",
            masks,
            "--set",
            truth,
            "--set",
            f"partial={tmp_path / 'partial.json'}",
            "--mesh",
            car_obj,
            "--out",
            out,
        )
    (tmp_path / "list.txt").write_text("a.jpg\nd.jpg\n")
    write_pose_set(
        tmp_path / "more.json", [PoseRecord(i, "car", None, pose=TRUTH["a.jpg"]) for i in ("a.jpg", "d.jpg")], None
    )
    with pytest.raises(MaskError, match="no mask for image 'd'"):
        run_evaluate(
            "--masks",
            masks,
            "--set",
            f"x={tmp_path / 'more.json'}",
            "--set",
            f"y={tmp_path / 'more.json'}",
            "--mesh",
            car_obj,
            "--images",
            tmp_path / "list.txt",
            "--out",
            out,
        )
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"other": {"mesh": str(car_obj), "category": "car"}}))
    with pytest.raises(ValueError, match=r"set 'truth', image 'a': unknown model 'car': not in the registry"):
        run_evaluate("--masks", masks, "--set", truth, "--set", shifted, "--registry", registry, "--out", out)
    with pytest.raises(ValueError, match="two or more pose sets"):
        run_evaluate("--masks", masks, "--set", truth, "--mesh", car_obj, "--out", out)
    with pytest.raises(ValueError, match="names must differ: truth"):
        run_evaluate("--masks", masks, "--set", truth, "--set", truth, "--mesh", car_obj, "--out", out)
    with pytest.raises(ValueError, match="NAME=PATH"):
        run_evaluate(
            "--masks", masks, "--set", str(tmp_path / "truth.json"), "--set", truth, "--mesh", car_obj, "--out", out
        )
    with pytest.raises(ValueError, match="either --registry"):
        run_evaluate("--masks", masks, "--set", truth, "--set", shifted, "--out", out)
    with pytest.raises(MaskError, match="mask folder not found"):
        run_evaluate("--masks", tmp_path / "nope", "--set", truth, "--set", shifted, "--mesh", car_obj, "--out", out)
    write_mask(masks / "a.png", np.ones((300, 300), dtype=bool))  # square mask, 3:2 pose
    with pytest.raises(ValueError, match="mask is 300x300 but the pose refers to a 300x200 image"):
        run_evaluate("--masks", masks, "--set", truth, "--set", shifted, "--mesh", car_obj, "--out", out)
    write_mask(masks / "a.png", np.zeros((200, 300), dtype=bool))
    with pytest.raises(MaskError, match="mask is empty"):
        run_evaluate("--masks", masks, "--set", truth, "--set", shifted, "--mesh", car_obj, "--out", out)
