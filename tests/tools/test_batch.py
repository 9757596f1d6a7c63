"""``finepose refine-batch``: a manifest of procedural-car items refined serially, in local
processes and on a local Ray cluster, resumed after a crash, with bad items among good ones."""

import json
import math
import shutil
import sys

from dataclasses import replace

import numpy as np
import pytest

from geometry.frames import FRAMES
from geometry.masks import write_mask
from geometry.pose import Pose
from ls_backend.cli.main import build_parser
from ls_backend.tools.batch import ManifestError, group_by_mesh, load_manifest, read_results, run_batch
from ls_backend.tools.executors import Item, item_pose, make_executor, renderer_for

SIZE = (160, 120)
TRUTHS = [
    Pose(azimuth=a, elevation=e, theta=2, distance=1.7, focal=180, u=80, v=60, width=SIZE[0], height=SIZE[1])
    for a, e in ((30, 12), (125, 8), (215, 15), (300, 10))
]
OFFSET = np.array([4.0, -3.0, 2.0, 0.06, 8.0, -3.0, 3.0])  # a rough start, like a human annotation


def write_mesh(path, mesh):
    import open3d as o3d

    legacy = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices), o3d.utility.Vector3iVector(mesh.triangles))
    assert o3d.io.write_triangle_mesh(str(path), legacy)


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory, car, car_renderer):
    """A folder with car.ply, car.obj, masks at TRUTHS, start poses (files and inline) and
    manifest.json (relative paths), items alternating between the two meshes."""
    folder = tmp_path_factory.mktemp("batch")
    write_mesh(folder / "car.ply", car)
    write_mesh(folder / "car.obj", car)
    items = []
    for number, truth in enumerate(TRUTHS):
        write_mask(folder / f"mask{number}.png", car_renderer.render(truth))
        start = truth.with_vector(truth.vector() + OFFSET * (1 if number % 2 else -1)).to_dict()
        if number < 2:
            (folder / f"start{number}.json").write_text(json.dumps(start))
            start = f"start{number}.json"
        mesh = "car.ply" if number % 2 else "car.obj"
        items.append({"id": f"img{number}", "mesh": mesh, "mask": f"mask{number}.png", "pose": start})
    (folder / "manifest.json").write_text(json.dumps(items))
    return folder


@pytest.fixture(scope="module")
def serial(batch_dir, tmp_path_factory):
    """(summary, results file) of the serial run of the manifest."""
    out = tmp_path_factory.mktemp("serial") / "results.jsonl"
    return run_batch(batch_dir / "manifest.json", out, executor="serial", progress=False), out


def refined_numbers(path) -> dict:
    """Per id, everything the refiner computes (not its timing)."""
    keys = ("initial", "refined", "iou_initial", "iou_refined", "renders", "details")
    return {key: {k: record[k] for k in keys} for key, record in read_results(path).items()}


def test_serial_refines_every_item_beyond_its_start(serial):
    summary, out = serial
    assert summary["done"] == len(TRUTHS) and summary["failed"] == summary["skipped"] == 0
    assert summary["executor"] == "serial" and summary["workers"] == 1 and summary["items_per_second"] > 0
    results = read_results(out)
    assert sorted(results) == [f"img{n}" for n in range(len(TRUTHS))]
    for record in results.values():
        assert record["iou_refined"] > max(0.95, record["iou_initial"] + 0.05)
        assert record["refined"]["image_width"] == SIZE[0]


def test_cli_two_processes_match_serial(serial, batch_dir, tmp_path, capsys):
    parser = build_parser()
    out = tmp_path / "results.jsonl"
    args = parser.parse_args(["refine-batch", str(batch_dir / "manifest.json"), "--out", str(out), "--workers", "2"])
    args.func(args)
    summary = json.loads(capsys.readouterr().out)
    assert (summary["executor"], summary["workers"], summary["done"]) == ("process", 2, len(TRUTHS))
    assert refined_numbers(out) == refined_numbers(serial[1])


def test_ray_local_cluster_matches_serial(serial, batch_dir, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'finepose[ray]')")
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        summary = run_batch(batch_dir / "manifest.json", tmp_path / "results.jsonl", executor="ray", progress=False)
    finally:
        ray.shutdown()
    assert (summary["executor"], summary["workers"], summary["done"]) == ("ray", 2, len(TRUTHS))
    assert refined_numbers(tmp_path / "results.jsonl") == refined_numbers(serial[1])


def test_resume_skips_done_items_and_redoes_a_truncated_line(serial, batch_dir, tmp_path):
    lines = serial[1].read_bytes().splitlines(keepends=True)
    out = tmp_path / "results.jsonl"
    out.write_bytes(b"".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # a crash mid-line
    summary = run_batch(batch_dir / "manifest.json", out, executor="serial", progress=False)
    assert (summary["skipped"], summary["done"], summary["failed"]) == (2, len(TRUTHS) - 2, 0)
    assert out.read_bytes().startswith(b"".join(lines[:2]))
    assert refined_numbers(out) == refined_numbers(serial[1])

    again = run_batch(batch_dir / "manifest.json", out, executor="process", progress=False)
    assert (again["skipped"], again["done"], again["workers"]) == (len(TRUTHS), 0, 0)
    assert len(out.read_bytes().splitlines()) == len(TRUTHS)


def test_bad_items_are_recorded_and_the_others_finish(batch_dir, tmp_path):
    (tmp_path / "broken.ply").write_text("ply\nthis is not a mesh\n")
    good = {"id": "good", "mesh": str(batch_dir / "car.ply"), "mask": str(batch_dir / "mask0.png"),
            "pose": str(batch_dir / "start0.json")}
    nan_pose = {**TRUTHS[0].to_dict(), "azimuth": math.nan}
    items = [
        {**good, "id": "no-mask", "mask": "missing.png"},
        {**good, "id": "nan-pose", "pose": nan_pose},
        {**good, "id": "bad-mesh", "mesh": "broken.ply"},
        {**good, "id": "no-pose-file", "pose": "missing.json"},
        good,
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(item) for item in items) + "\n")
    summary = run_batch(manifest, tmp_path / "results.jsonl", executor="serial", progress=False)
    assert (summary["done"], summary["failed"]) == (1, 4)
    results = read_results(tmp_path / "results.jsonl")
    assert "mask file not found" in results["no-mask"]["error"]
    assert "azimuth must be a finite number" in results["nan-pose"]["error"]
    assert "could not read any triangles" in results["bad-mesh"]["error"]
    assert "pose file not found" in results["no-pose-file"]["error"]
    assert "error" not in results["good"] and results["good"]["iou_refined"] > 0.95


@pytest.mark.parametrize(
    "items, message",
    [
        ([{"id": "a", "mesh": "m.ply", "mask": "a.png", "pose": "p.json"}] * 2, "duplicate id"),
        ([{"id": "a", "mesh": "m.ply", "mask": "a.png"}], "missing pose"),
        ([{"id": "a", "mesh": "m.ply", "mask": "a.png", "pose": "p.json", "msk": "x"}], "unknown key"),
        ([{"id": "a", "mesh": "m.ply", "mask": "a.png", "pose": "p.json", "frame": "upside"}], "unknown frame"),
        ([{"id": 7, "mesh": "m.ply", "mask": "a.png", "pose": "p.json"}], "id must be a non-empty string"),
        ([{"id": "a", "mesh": "m.ply", "mask": "a.png", "pose": 3}], "pose must be a file path or a pose object"),
        (["a.png"], "must be a JSON object"),
        ([], "no items"),
    ],
)
def test_manifest_errors_are_caught_up_front(tmp_path, items, message):
    (tmp_path / "manifest.json").write_text(json.dumps(items))
    with pytest.raises(ManifestError, match=message):
        run_batch(tmp_path / "manifest.json", tmp_path / "out.jsonl", executor="serial")
    assert not (tmp_path / "out.jsonl").exists()


def test_manifest_formats_and_relative_paths(tmp_path):
    items = [{"id": "a", "mesh": "m.ply", "mask": "a.png", "pose": "p.json", "frame": "shapenet"},
             {"id": "b", "mesh": "/abs/n.obj", "mask": "b.png", "pose": {"azimuth": 1}, "image": "photos/b.jpg"}]
    (tmp_path / "list.json").write_text(json.dumps(items))
    (tmp_path / "object.json").write_text(json.dumps({"items": items}))
    (tmp_path / "lines.jsonl").write_text("\n".join(json.dumps(item) for item in items) + "\n\n")
    loaded = load_manifest(tmp_path / "list.json")
    assert loaded == load_manifest(tmp_path / "object.json") == load_manifest(tmp_path / "lines.jsonl")
    a, b = loaded
    assert (a.mesh, a.pose, a.frame) == (str(tmp_path / "m.ply"), str(tmp_path / "p.json"), "shapenet")
    assert (b.mesh, b.pose, b.image) == ("/abs/n.obj", {"azimuth": 1}, str(tmp_path / "photos/b.jpg"))


def test_items_are_grouped_by_mesh_in_manifest_order():
    items = [Item(id=str(n), mesh=mesh, mask="m.png", pose="p.json") for n, mesh in enumerate("abacb")]
    assert [item.id for item in group_by_mesh(items)] == ["0", "2", "1", "4", "3"]


def test_frame_is_the_mesh_frame_by_the_one_rule():
    """A manifest ``frame`` means what ``--frame`` and a registry's frame mean: the pose is
    expressed in it (geometry.frames.pose_in_model_frame)."""
    from geometry.camera import project
    from geometry.conventions import seed
    from geometry.frames import FrameError

    item = Item(id="a", mesh="m.ply", mask="m.png", pose=TRUTHS[0].to_dict(), frame="shapenet")
    np.testing.assert_array_equal(item_pose(item).mesh_frame, FRAMES["shapenet"])  # names none: read in it
    named = replace(TRUTHS[0], mesh_frame=FRAMES["pascal3d"]).to_dict() | {"mesh_frame": "pascal3d"}
    converted = item_pose(Item(id="b", mesh="m.ply", mask="m.png", pose=named, frame="shapenet"))
    points = np.random.default_rng(0).uniform(-1, 1, (20, 3))
    np.testing.assert_allclose(project(converted, points), project(TRUTHS[0], points), atol=1e-6)
    mirrored = replace(TRUTHS[0], mesh_frame=seed.MESH_FRAME).to_dict()
    with pytest.raises(FrameError, match="reflection"):
        item_pose(Item(id="c", mesh="m.ply", mask="m.png", pose=mirrored, frame="shapenet"))


def test_ray_executor_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match="pip install 'finepose\\[ray\\]'"):
        make_executor("ray", None, 1)


def test_ray_address_needs_the_ray_executor():
    with pytest.raises(ValueError, match="--ray-address needs --executor ray"):
        make_executor("process", None, 1, ray_address="auto")


def test_each_process_loads_a_mesh_once(batch_dir):
    ply, obj = str(batch_dir / "car.ply"), str(batch_dir / "car.obj")
    renderer = renderer_for(ply)
    assert renderer_for(obj) is not renderer
    assert renderer_for(ply) is renderer


def test_a_fixed_item_is_refined_again_with_retry_failed(batch_dir, tmp_path):
    good = {"id": "good", "mesh": str(batch_dir / "car.ply"), "mask": str(batch_dir / "mask0.png"),
            "pose": str(batch_dir / "start0.json")}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([good, {**good, "id": "late-mask", "mask": str(tmp_path / "late.png")}]))
    out = tmp_path / "results.jsonl"
    first = run_batch(manifest, out, executor="serial", progress=False)
    assert (first["done"], first["failed"]) == (1, 1)
    shutil.copy(batch_dir / "mask1.png", tmp_path / "late.png")  # the user fixes the input
    again = run_batch(manifest, out, executor="serial", progress=False)
    assert (again["skipped"], again["done"], again["failed"]) == (2, 0, 0)  # errors are kept unless asked
    retried = run_batch(manifest, out, executor="serial", progress=False, retry_failed=True)
    assert (retried["skipped"], retried["done"], retried["failed"]) == (1, 1, 0)
    assert "error" not in read_results(out)["late-mask"]  # the item's last line wins
    # a line marked transient (its Ray worker was lost) is redone by any re-run
    with open(out, "a") as f:
        f.write(json.dumps({"id": "good", "mesh": good["mesh"], "mask": good["mask"], "error": "lost", "transient": True}) + "\n")
    assert run_batch(manifest, out, executor="serial", progress=False)["done"] == 1


def test_refine_batch_on_a_ray_cluster_survives_a_killed_actor(batch_dir, tmp_path):
    """A real two-node cluster on loopback; one refinement actor is killed mid-run: Ray restarts
    it and every item still gets its line, once."""
    import os
    import subprocess
    import time

    import psutil

    from tests.support.ray_cluster import ray_cluster

    items = json.loads((batch_dir / "manifest.json").read_text())
    many = [{**item, "id": f"{item['id']}-{n}", "mesh": str(batch_dir / item["mesh"]), "mask": str(batch_dir / item["mask"]),
             "pose": item["pose"] if isinstance(item["pose"], dict) else str(batch_dir / item["pose"])}
            for n in range(6) for item in items]
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(many))
    out = tmp_path / "results.jsonl"
    with ray_cluster(tmp_path / "cluster", nodes=2, cpus_per_node=1) as env:
        run = subprocess.Popen([sys.executable, "-m", "ls_backend.cli", "refine-batch", str(manifest), "--out", str(out),
                                "--executor", "ray", "--ray-address", env["RAY_ADDRESS"]],
                               env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = None
        while run.poll() is None and killed is None:
            lines = out.read_text().count("\n") if out.exists() else 0
            actors = [p for p in psutil.process_iter() if "_RayRefiner" in " ".join(p.cmdline() or [])]
            if lines >= 2 and actors:
                actors[0].kill()
                killed = lines
            time.sleep(0.05)
        stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr[-3000:]
    assert killed is not None and killed < len(many), "the actor was killed mid-run"
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(item["id"] for item in many)  # every item once
    assert json.loads(stdout)["failed"] == 0  # stdout is the summary alone


def test_a_ray_client_address_is_refused_saying_what_to_do():
    """Ray Data does not run over Ray Client (ray://) in Ray 2.60: refused before any work,
    for refine-batch and prelabel alike."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'finepose[ray]')")
    from ls_backend.settings import Settings
    from ls_backend.tools.prelabel.on_ray import RayPipeline

    with pytest.raises(ValueError, match="ray job submit"):
        make_executor("ray", None, 1, ray_address="ray://head:10001")
    with pytest.raises(ValueError, match="--ray auto"):
        RayPipeline(None, Settings(), "ray://head:10001")
