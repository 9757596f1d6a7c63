"""Pose sets (ls_backend/posesets.py) and `finepose stats` (ls_backend/stats.py)."""

import csv
import json
import math
import pickle

import numpy as np
import pytest

from geometry.conventions import seed
from geometry.pose import Pose, wrap_signed_degrees
from ls_backend.cli.main import build_parser
from ls_backend.tools import stats
from ls_backend.datasets.posesets import PoseRecord, PoseSetError, image_key, load_pose_set, write_pose_set

from tests.support.data import data_path

ANNO = ("finegrained_pose", "Anno3D")


def run_stats(*argv):
    args = build_parser().parse_args(["stats", *map(str, argv)])
    args.func(args)


def release_records(n, rng):
    """Release-style records (radians, f, u/v from the centre)."""
    records = {}
    for i in range(n):
        record = {
            "model_id": f"{i % 3:032x}",
            "azimuth": float(rng.uniform(0, 2 * math.pi)),
            "elevation": float(rng.normal(0.05, 0.05)),
            "theta": float(rng.normal(0, 0.03)),
            "distance": float(rng.uniform(1, 3)),
            "f": float(rng.choice([300.0, 350.0, 500.0])),
            "u": float(rng.integers(-40, 40)),
            "v": float(rng.integers(-30, 30)) + 0.5,
        }
        records[f"{i:05d}.jpg"] = record
    return records


def write_pickle(path, records):
    with open(path, "wb") as f:
        pickle.dump(records, f, protocol=2)
    return path


def read_csv_counts(path):
    counts = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            counts[row["parameter"]] = counts.get(row["parameter"], 0) + int(row["count"])
    return counts


# -- pose sets -------------------------------------------------------------------------------


def test_export_format_round_trips_every_pose_exactly(tmp_path, rng):
    records = []
    for i in range(20):
        frame = seed.MESH_FRAME if i % 2 else np.eye(3)
        pose = Pose(
            azimuth=rng.uniform(-180, 180),
            elevation=rng.uniform(-30, 60),
            theta=rng.normal(0, 5),
            distance=rng.uniform(0.5, 5),
            focal=rng.uniform(100, 3000),
            u=rng.uniform(0, 600),
            v=rng.uniform(0, 400),
            width=600,
            height=400 + i,
            mesh_frame=frame,
        )
        records.append(PoseRecord(f"{i:05d}.jpg", f"model{i % 4}", ("train", "test", None)[i % 3], pose=pose))
    split = {"method": "random", "seed": 3, "test_fraction": 1 / 3}
    write_pose_set(tmp_path / "set.json", records, split)
    loaded = load_pose_set(tmp_path / "set.json")
    assert loaded.split == split
    assert list(loaded) == [r.image for r in records]
    for record in records:
        back = loaded[record.image]
        assert (back.model, back.split) == (record.model, record.split)
        assert np.array_equal(back.pose.vector(), record.pose.vector())
        assert (back.pose.width, back.pose.height) == (record.pose.width, record.pose.height)
        assert np.array_equal(back.pose.mesh_frame, record.pose.mesh_frame)


def test_export_format_refuses_bad_sets(tmp_path):
    pose = Pose(azimuth=0, elevation=0, theta=0, distance=2, focal=300, u=150, v=100, width=300, height=200)
    with pytest.raises(PoseSetError, match="split must be one of"):
        write_pose_set(tmp_path / "a.json", [PoseRecord("a.jpg", None, "val", pose=pose)], None)
    with pytest.raises(PoseSetError, match="method"):
        write_pose_set(tmp_path / "a.json", [PoseRecord("a.jpg", None, None, pose=pose)], {"method": "magic"})
    release = PoseRecord("a.jpg", None, None, release=release_records(1, np.random.default_rng(0))["00000.jpg"])
    with pytest.raises(PoseSetError, match="original image size"):
        write_pose_set(tmp_path / "a.json", [release], None)
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(PoseSetError, match="not a finepose pose set"):
        load_pose_set(tmp_path / "other.json")
    bad_pose = {
        "format": "finepose-poses",
        "version": 1,
        "split": None,
        "items": [{"image": "x.jpg", "model": None, "split": None, "pose": {"azimuth": 1}}],
    }
    (tmp_path / "bad.json").write_text(json.dumps(bad_pose))
    with pytest.raises(PoseSetError, match="pose of 'x.jpg'.*missing"):
        load_pose_set(tmp_path / "bad.json")
    with pytest.raises(PoseSetError, match="not found"):
        load_pose_set(tmp_path / "absent.pkl")


def test_pickle_and_folder_sources(tmp_path, rng):
    records = release_records(5, rng)
    loaded = load_pose_set(write_pickle(tmp_path / "test_anno_v2.pkl", records))
    assert loaded.convention == "seed" and len(loaded) == 5
    first = loaded["00000.jpg"]
    assert first.split == "test" and first.model == records["00000.jpg"]["model_id"]
    # a release record makes the same pose as geometry's converter, at the given original size
    expected = seed.to_pose(records["00000.jpg"], 600, 400).rescaled(600, 400)
    assert np.allclose(first.pose_for(600, 400).vector(), expected.vector())

    folder = tmp_path / "poses"
    (folder / "sub").mkdir(parents=True)
    pose = expected.to_dict()
    (folder / "00001.json").write_text(json.dumps({**pose, "source": {"model_id": "m1"}}))
    (folder / "sub" / "00002.json").write_text(json.dumps({**pose, "model": "m2"}))
    from_folder = load_pose_set(folder)
    assert sorted(from_folder) == ["00001", "sub/00002"]
    assert from_folder["00001"].model == "m1" and from_folder["sub/00002"].model == "m2"
    assert image_key("sub/00002.jpg") == "sub/00002"

    write_pickle(tmp_path / "dup_anno.pkl", {"a.jpg": records["00000.jpg"], "a.png": records["00001.jpg"]})
    with pytest.raises(PoseSetError, match="same name without extension"):
        load_pose_set(tmp_path / "dup_anno.pkl")
    write_pickle(tmp_path / "nan_anno.pkl", {"a.jpg": {**records["00000.jpg"], "u": float("nan")}})
    with pytest.raises(PoseSetError, match="'a.jpg' has a non-finite"):
        load_pose_set(tmp_path / "nan_anno.pkl")


# -- statistics ------------------------------------------------------------------------------


def test_stats_on_synthetic_pickles(tmp_path):
    rng = np.random.default_rng(5)
    human = release_records(300, rng)
    shift = {"azimuth": math.radians(359.0), "u": 2.0, "f": -10.0}  # +359 deg wraps to -1 deg
    refined = {k: {**r, **{f: r[f] + shift.get(f, 0.0) for f in shift}} for k, r in human.items()}
    write_pickle(tmp_path / "test_anno.pkl", human)
    write_pickle(tmp_path / "test_anno_v2.pkl", refined)
    out = tmp_path / "out"
    run_stats(
        tmp_path / "test_anno.pkl",
        "--compare",
        tmp_path / "test_anno_v2.pkl",
        "--out",
        out,
        "--name",
        "human",
        "--compare-name",
        "refined",
    )

    counts = read_csv_counts(out / "human_histograms.csv")
    assert counts == {p: 300 for p in stats.PARAMETER_NAMES}
    summary = json.loads((out / "human_summary.json").read_text())
    assert summary["count"] == 300 and summary["convention"] == "seed"
    distances = [r["distance"] for r in human.values()]
    assert summary["parameters"]["distance"]["mean"] == pytest.approx(np.mean(distances))
    azimuths = [math.degrees(r["azimuth"]) for r in human.values()]
    assert summary["parameters"]["azimuth"]["max"] == pytest.approx(max(azimuths))
    assert summary["parameters"]["focal"]["min"] == 300.0

    diff = json.loads((out / "human_vs_refined_diff.json").read_text())
    assert diff["images"] == 300 and diff["model_changed"] == 0
    assert diff["parameters"]["azimuth"]["mean"] == pytest.approx(-1.0)
    assert diff["parameters"]["u"]["mean"] == pytest.approx(2.0)
    assert diff["parameters"]["focal"]["mean"] == pytest.approx(-10.0)
    assert diff["parameters"]["distance"]["share_unchanged"] == 1.0
    assert read_csv_counts(out / "human_vs_refined_diff.csv") == {p: 300 for p in stats.PARAMETER_NAMES}
    for png in ("human.png", "refined.png", "human_vs_refined_diff.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_histograms_keep_every_value_and_wrap_angles():
    values = np.concatenate([np.arange(-50.0, 50.0, 0.5), [1e6, -1e6]])  # quantised, two far outliers
    edges, counts = stats.histogram("u", values)
    assert counts.sum() == len(values) and counts[0] == 1 and counts[-1] == 1
    assert np.all(np.isin(np.diff(edges[1:-1]) / 0.5 % 1, [0.0]))  # whole half-pixel steps: no aliasing
    assert np.allclose(wrap_signed_degrees([180, -180, 190, -190, 540]), [180, 180, -170, 170, 180])
    assert stats.histogram("azimuth", np.array([0.0, 359.9]))[1].sum() == 2


def test_stats_compare_refuses_mixed_conventions(tmp_path, rng):
    write_pickle(tmp_path / "test_anno.pkl", release_records(3, rng))
    pose = Pose(azimuth=0, elevation=0, theta=0, distance=2, focal=300, u=150, v=100, width=300, height=200)
    write_pose_set(tmp_path / "set.json", [PoseRecord("00000.jpg", None, None, pose=pose)], None)
    with pytest.raises(ValueError, match="different conventions"):
        run_stats(tmp_path / "test_anno.pkl", "--compare", tmp_path / "set.json", "--out", tmp_path / "o")


@pytest.mark.parametrize("dataset,count", [("StanfordCars", 8041), ("FGVC_Aircraft", 3333)])
def test_stats_on_real_release(tmp_path, dataset, count):
    human = data_path(*ANNO, dataset, "test_anno.pkl")
    refined = data_path(*ANNO, dataset, "test_anno_v2.pkl")
    run_stats(human, "--compare", refined, "--out", tmp_path, "--name", "human", "--compare-name", "refined")
    for name in ("human_histograms.csv", "refined_histograms.csv", "human_vs_refined_diff.csv"):
        assert read_csv_counts(tmp_path / name) == {p: count for p in stats.PARAMETER_NAMES}
    summary = json.loads((tmp_path / "human_summary.json").read_text())
    assert summary["count"] == count
    # elevation and in-plane rotation concentrate near 0 (the paper's Figure 7)
    assert abs(summary["parameters"]["theta"]["circular_mean"]) < 5
    diff = json.loads((tmp_path / "human_vs_refined_diff.json").read_text())
    assert diff["images"] == count
