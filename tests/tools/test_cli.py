"""The finepose command line, end to end on files it writes itself (and real data where present)."""

import json

import numpy as np
import pytest

from geometry.conventions import seed
from geometry.masks import read_mask, write_mask
from geometry.pose import Pose
from ls_backend.cli import main

from tests.support.data import data_path

POSE = Pose(azimuth=35, elevation=12, theta=3, distance=1.7, focal=330, u=150, v=105, width=300, height=200)


@pytest.fixture
def car_obj(tmp_path, car):
    import open3d as o3d

    path = tmp_path / "car.obj"
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(car.vertices), o3d.utility.Vector3iVector(car.triangles))
    assert o3d.io.write_triangle_mesh(str(path), mesh)
    return path


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_render_iou_refine_round(tmp_path, capsys, car_obj):
    truth = write_json(tmp_path / "truth.json", POSE.to_dict())
    code, out, _ = run(capsys, "render", "--mesh", car_obj, "--pose", truth, "--out", tmp_path / "mask.png", "--size", "600x400")
    assert code == 0 and out["width"] == 600 and out["area"] > 1000
    assert read_mask(tmp_path / "mask.png").shape == (400, 600)

    code, out, _ = run(capsys, "iou", "--mesh", car_obj, "--pose", truth, "--mask", tmp_path / "mask.png")
    assert out["iou"] > 0.98  # the 300x200 pose rescaled to the 600x400 mask

    start = write_json(tmp_path / "start.json", POSE.with_vector(POSE.vector() + [4, -3, 2, 0.06, 15, -6, 5]).to_dict())
    code, out, _ = run(capsys, "refine", "--mesh", car_obj, "--pose", start, "--mask", tmp_path / "mask.png",
                       "--overlay", tmp_path / "overlay.png")
    assert code == 0
    assert set(out) >= {"initial", "refined", "iou_initial", "iou_refined", "renders", "seconds"}
    assert out["iou_refined"] > 0.97 > out["iou_initial"]
    assert out["refined"]["image_width"] == 600
    assert (tmp_path / "overlay.png").stat().st_size > 1000


def test_pascal3d_pose_file_is_accepted(tmp_path, capsys, car_obj):
    from geometry.conventions import pascal3d

    truth = write_json(tmp_path / "p3d.json", pascal3d.from_pose(POSE))
    write_mask(tmp_path / "mask.png", np.zeros((200, 300), bool) | (np.arange(300) > 100)[None, :])
    code, out, _ = run(capsys, "iou", "--mesh", car_obj, "--pose", truth, "--mask", tmp_path / "mask.png")
    assert code == 0 and 0 < out["iou"] < 1


def test_init_finds_the_pose_or_its_mirror(tmp_path, capsys, car_obj, car_renderer):
    write_mask(tmp_path / "mask.png", car_renderer.render(POSE))
    code, out, _ = run(capsys, "init", "--mesh", car_obj, "--mask", tmp_path / "mask.png")
    assert code == 0
    best = out["best"]
    assert best["iou"] > 0.9
    # The car's left/right symmetry makes azimuth a and 180 - a look alike in silhouette.
    candidates = [h["pose"]["azimuth"] for h in out["hypotheses"][:2]]
    assert any(min(abs((c - t + 180) % 360 - 180) for t in (35, 145, -35, -145)) < 10 for c in candidates)
    # Coarse views that refine to one pose are listed once.
    poses = [h["pose"] for h in out["hypotheses"]]
    for i, a in enumerate(poses):
        for b in poses[:i]:
            assert abs((a["azimuth"] - b["azimuth"] + 180) % 360 - 180) >= 25 or abs(a["elevation"] - b["elevation"]) > 15
    # init's output is a pose wherever one is taken: refine starts from its best hypothesis,
    # and refine's own output feeds the next command (its refined pose)
    (tmp_path / "init.json").write_text(json.dumps(out))
    code, refined, err = run(capsys, "refine", "--mesh", car_obj, "--pose", tmp_path / "init.json", "--mask", tmp_path / "mask.png")
    assert code == 0, err
    assert refined["initial"]["azimuth"] == pytest.approx(best["pose"]["azimuth"]) and refined["iou_refined"] >= best["iou"] - 1e-9
    (tmp_path / "refined.json").write_text(json.dumps(refined))
    code, measured, err = run(capsys, "iou", "--mesh", car_obj, "--pose", tmp_path / "refined.json", "--mask", tmp_path / "mask.png")
    assert code == 0 and measured["iou"] == pytest.approx(refined["iou_refined"], abs=1e-9), err


def test_bad_inputs_exit_2_with_a_clear_message(tmp_path, capsys, car_obj):
    pose = write_json(tmp_path / "pose.json", POSE.to_dict())
    write_mask(tmp_path / "mask.png", np.ones((200, 300), bool))
    code, _, err = run(capsys, "iou", "--mesh", tmp_path / "nope.obj", "--pose", pose, "--mask", tmp_path / "mask.png")
    assert code == 2 and "mesh file not found" in err
    (tmp_path / "broken.obj").write_text("this is not an obj\n")
    code, _, err = run(capsys, "iou", "--mesh", tmp_path / "broken.obj", "--pose", pose, "--mask", tmp_path / "mask.png")
    assert code == 2 and "could not read any triangles" in err
    (tmp_path / "empty.off").write_text("")
    code, _, err = run(capsys, "iou", "--mesh", tmp_path / "empty.off", "--pose", pose, "--mask", tmp_path / "mask.png")
    assert code == 2 and "empty" in err
    nan_pose = write_json(tmp_path / "nan.json", {**POSE.to_dict(), "azimuth": float("nan")})
    code, _, err = run(capsys, "iou", "--mesh", car_obj, "--pose", nan_pose, "--mask", tmp_path / "mask.png")
    assert code == 2 and "azimuth" in err and "finite" in err
    code, _, err = run(capsys, "iou", "--mesh", car_obj, "--pose", pose, "--mask", tmp_path / "missing.png")
    assert code == 2 and "mask file not found" in err
    write_mask(tmp_path / "blank.png", np.zeros((20, 30), bool))
    code, _, err = run(capsys, "refine", "--mesh", car_obj, "--pose", pose, "--mask", tmp_path / "blank.png")
    assert code == 2 and "empty" in err


def test_tool_errors_exit_2_naming_the_command(tmp_path, capsys, car_obj):
    """Errors of the tools (finepose's own error classes, not only geometry's) are messages, not tracebacks."""
    code, _, err = run(capsys, "evaluate", "--masks", tmp_path, "--set", "no-equals-sign", "--mesh", car_obj,
                       "--out", tmp_path / "out")
    assert code == 2 and err.startswith("finepose evaluate: error: --set must look like NAME=PATH")
    code, _, err = run(capsys, "registry", "from-cad", "--cad", tmp_path / "missing.txt", "--mesh-template",
                       "{model_id}.obj", "--category", "car", "--out", tmp_path / "r.json")
    assert code == 2 and "model id file not found" in err
    code, _, err = run(capsys, "from-release", "--anno", tmp_path / "none.pkl", "--key", "1.jpg", "--image-size", "6x4")
    assert code == 2 and err.startswith("finepose from-release: error: pose set not found")
    manifest = write_json(tmp_path / "manifest.json", [])
    code, _, err = run(capsys, "refine-batch", manifest, "--out", tmp_path / "r.jsonl", "--workers", "0")
    assert code == 2 and "manifest has no items" in err


def test_from_release_reproduces_the_release_projection(tmp_path, capsys):
    """from-release JSON + the release's OBJ as it is = the release's formula, vertex for vertex."""
    import pickle

    from geometry import camera
    from geometry.mesh import load_mesh
    from geometry.pose_io import load_pose

    anno = data_path("finegrained_pose", "Anno3D", "FGVC_Aircraft", "test_anno.pkl")
    obj = data_path("meshes", "shapenet_airplane", "model.obj")
    with open(anno, "rb") as f:
        records = pickle.load(f, encoding="latin1")
    key = sorted(records)[0]
    code, out, _ = run(capsys, "from-release", "--anno", anno, "--key", key, "--image-size", "600x400")
    assert code == 0 and out["image_width"] == 300 and out["image_height"] == 200
    pose_file = write_json(tmp_path / "pose.json", out)
    pose = load_pose(pose_file)
    vertices = load_mesh(obj).vertices
    np.testing.assert_allclose(camera.project(pose, vertices), seed.project(records[key], vertices, 600, 400), atol=1e-6)
    # The rendered silhouette covers the projected vertices (same mesh file, no conversion).
    code, _, _ = run(capsys, "render", "--mesh", obj, "--pose", pose_file, "--out", tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png")
    xy = np.rint(seed.project(records[key], vertices, 600, 400)).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < 300) & (xy[:, 1] >= 0) & (xy[:, 1] < 200)
    assert inside.mean() > 0.9
    from scipy import ndimage

    assert ndimage.binary_dilation(mask, iterations=1)[xy[inside, 1], xy[inside, 0]].mean() > 0.99
    # And back to the release's numbers.
    code, back, _ = run(capsys, "export", "--pose", pose_file, "--convention", "seed", "--image-size", "600x400")
    for field in seed.FIELDS:
        assert back[field] == pytest.approx(records[key][field], abs=1e-6)


def test_demo_runs_and_improves(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--out", tmp_path)
    assert code == 0
    assert out["iou_refined"] > out["iou_initial"] + 0.1
    assert out["iou_refined_vs_clean_truth"] > 0.97
    assert (tmp_path / "overlay.png").is_file()


def test_refine_overlay_with_the_shaded_model(tmp_path, car_obj, car_renderer):
    """Run as a user would (a separate process): Open3D's renderer logs from C++, and stdout
    must still be nothing but the JSON answer."""
    import subprocess
    import sys

    from geometry.shaded import shaded_available, shaded_unavailable_reason
    from skimage.io import imread, imsave

    if not shaded_available():
        pytest.skip(f"no shaded rendering here: {shaded_unavailable_reason()}")
    write_mask(tmp_path / "mask.png", car_renderer.render(POSE))
    imsave(tmp_path / "photo.png", np.full((200, 300, 3), 30, np.uint8), check_contrast=False)
    start = write_json(tmp_path / "start.json", POSE.with_vector(POSE.vector() + [3, -2, 1, 0.04, 10, -4, 3]).to_dict())
    args = ["refine", "--mesh", car_obj, "--pose", start, "--mask", tmp_path / "mask.png", "--image",
            tmp_path / "photo.png", "--overlay", tmp_path / "shaded.png", "--shaded"]
    done = subprocess.run([sys.executable, "-m", "ls_backend.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["overlay"].endswith("shaded.png")
    picture = imread(tmp_path / "shaded.png")[..., :3].astype(int)
    changed = np.abs(picture - 30).sum(axis=2) > 20
    # The shaded model (and outlines) cover the refined silhouette and little else.
    refined = car_renderer.render(Pose.from_dict(out["refined"]))
    assert (changed & refined).sum() / refined.sum() > 0.95
    assert (changed & ~refined).sum() < 0.2 * refined.sum()


def test_frame_is_the_mesh_frame_by_the_one_rule(tmp_path, capsys, car_obj):
    """``--frame`` names the mesh's frame: a pose naming another frame a rotation apart is
    converted (same silhouette), one a reflection apart refused with both frames named."""
    from dataclasses import replace

    from geometry.frames import express_in_frame

    truth = write_json(tmp_path / "truth.json", POSE.to_dict())
    code, out, _ = run(capsys, "render", "--mesh", car_obj, "--pose", truth, "--out", tmp_path / "mask.png")
    assert code == 0
    in_shapenet = write_json(tmp_path / "shapenet.json", express_in_frame(POSE, "shapenet").to_dict())
    code, out, _ = run(capsys, "iou", "--mesh", car_obj, "--pose", in_shapenet, "--mask", tmp_path / "mask.png",
                       "--frame", "pascal3d")
    assert code == 0 and out["iou"] > 0.999
    mirrored = write_json(tmp_path / "mirrored.json", replace(POSE, mesh_frame=seed.MESH_FRAME).to_dict())
    code, _, err = run(capsys, "iou", "--mesh", car_obj, "--pose", mirrored, "--mask", tmp_path / "mask.png",
                       "--frame", "shapenet")
    assert code == 2 and "reflection" in err and "'shapenet'" in err


def test_a_label_studio_refusal_is_one_line_without_headers(monkeypatch, capsys):
    """Any label-studio-sdk API error a command lets through exits 2 with one line: the SDK's
    own message prints every HTTP header, a session cookie included."""
    from label_studio_sdk.core.api_error import ApiError

    from ls_backend.cli import study

    def refused(args):
        raise ApiError(status_code=500, headers={"set-cookie": "sessionid=secret"}, body={"detail": "server fell over"})

    monkeypatch.setattr(study, "cmd_report", refused)
    assert main(["study", "report", "--study", "s", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["finepose study: error: Label Studio answered HTTP 500: {'detail': 'server fell over'}"]
    assert "sessionid" not in err
    monkeypatch.setattr(study, "cmd_report", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # anything else is a bug, with its traceback
        main(["study", "report", "--study", "s", "--out", "x"])
