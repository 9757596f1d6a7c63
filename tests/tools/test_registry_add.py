"""``finepose registry add``: a newcomer's own CAD model, in whatever orientation its file
has, becomes a registry entry whose azimuth 0 looks at the model's front, with a preview."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from geometry.frames import FRAMES
from geometry.mesh import Mesh, save_mesh
from geometry.pose import Pose
from geometry.render import SilhouetteRenderer
from ls_backend.cli import main
from ls_backend.registry import Registry
from geometry.frame_detection import axis_rotations
from tests.geometry.test_frame_detection import _box


def add(capsys, *args) -> tuple[int, dict | None, str]:
    code = main(["registry", "add", *map(str, args)])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else None, err


def front_view(frame) -> Pose:
    return Pose(azimuth=0.0, elevation=10.0, theta=0.0, distance=4.0, focal=400.0, u=160, v=120, width=320, height=240,
                mesh_frame=np.asarray(frame, float))


def test_a_shapenet_style_obj_turned_any_way_gets_a_frame_whose_azimuth_0_is_its_front(tmp_path, capsys, car):
    shapenet = FRAMES["shapenet"]  # y up, front at +z: file = S^T canonical
    turn = axis_rotations()[13]
    in_file = car.vertices @ shapenet @ turn.T  # (turn @ S^T @ v) per vertex
    save_mesh(tmp_path / "my_car.obj", Mesh(in_file, car.triangles))
    code, added, err = add(capsys, tmp_path / "my_car.obj", "--id", "my-car", "--category", "car",
                           "--registry", tmp_path / "registry.json")
    assert code == 0, err
    np.testing.assert_allclose(added["frame"], shapenet @ turn.T, atol=1e-9)
    assert added["found_by"]["by"] == "shape" and added["found_by"]["front_margin"] >= 0.02
    entry = Registry.load(tmp_path / "registry.json").entry("my-car")
    # the same picture as the canonical car: azimuth 0 is the front, whatever the file's axes
    turned = SilhouetteRenderer(Mesh(in_file, car.triangles)).render(front_view(entry.frame_matrix))
    np.testing.assert_array_equal(turned, SilhouetteRenderer(car).render(front_view(np.eye(3))))
    preview = Image.open(tmp_path / "previews" / "my-car.png")
    assert preview.size[0] > 3 * preview.size[1]  # four views side by side
    # a file in a known frame gets the frame's name
    save_mesh(tmp_path / "plain.obj", Mesh(car.vertices @ shapenet, car.triangles))
    code, added, err = add(capsys, tmp_path / "plain.obj", "--id", "plain", "--category", "car",
                           "--registry", tmp_path / "registry.json")
    assert code == 0 and added["frame"] == "shapenet" and (added["up"], added["front"]) == ("+y", "+z"), err
    assert set(json.loads((tmp_path / "registry.json").read_text())) == {"my-car", "plain"}


def test_front_and_back_the_same_asks_for_a_person(tmp_path, capsys):
    parts = [_box((2.0, 0.9, 0.5), (0, 0, 0.45)), _box((0.3, 1.0, 0.3), (-0.7, 0, 0.15)), _box((0.3, 1.0, 0.3), (0.7, 0, 0.15))]
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    save_mesh(tmp_path / "brick.ply", Mesh(np.concatenate([p.vertices for p in parts]),
                                           np.concatenate([p.triangles + o for p, o in zip(parts, offsets)])))
    code, _, err = add(capsys, tmp_path / "brick.ply", "--id", "brick", "--category", "car", "--registry", tmp_path / "r.json")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot be told apart" in err and "--up=+z and --front=+x or --front=-x" in err
    assert (tmp_path / "previews" / "brick.png").is_file() and not (tmp_path / "r.json").exists()
    # the person looks at the preview and says which end is the front
    code, added, err = add(capsys, tmp_path / "brick.ply", "--id", "brick", "--category", "car",
                           "--registry", tmp_path / "r.json", "--up=+z", "--front=-x")
    assert code == 0 and (added["up"], added["front"]) == ("+z", "-x") and added["found_by"] == {"by": "you"}, err
    code, _, err = add(capsys, tmp_path / "brick.ply", "--id", "brick", "--category", "car", "--registry", tmp_path / "r.json",
                       "--up", "+z", "--front", "+x")
    assert code == 2 and "already has a model 'brick'" in err
    code, added, err = add(capsys, tmp_path / "brick.ply", "--id", "brick", "--category", "car", "--registry", tmp_path / "r.json",
                           "--up", "+z", "--front", "+x", "--replace")
    assert code == 0 and added["front"] == "+x", err
    for bad, words in ((["--up", "+z"], "go together"), (["--up", "+z", "--front", "+z"], "different mesh axes"),
                       (["--frame", "pascal3d", "--up", "+z", "--front", "+x"], "not both")):
        code, _, err = add(capsys, tmp_path / "brick.ply", "--id", "b2", "--category", "car", "--registry",
                           tmp_path / "r.json", *bad)
        assert code == 2 and words in err, err
    code, _, err = add(capsys, tmp_path / "missing.obj", "--id", "m", "--category", "car", "--registry", tmp_path / "r.json")
    assert code == 2 and "not found" in err


@pytest.mark.parametrize("frame", [[[1, 0, 0], [0, 1, 0], [0, 0, -1]], "nope", [[1, 0], [0, 1]]])
def test_a_registry_frame_is_a_name_or_a_rotation(tmp_path, car, frame):
    from ls_backend.errors import RegistryError

    save_mesh(tmp_path / "car.ply", car)
    (tmp_path / "r.json").write_text(json.dumps({"c": {"mesh": "car.ply", "category": "car", "frame": frame}}))
    with pytest.raises(RegistryError, match="frame"):
        Registry.load(tmp_path / "r.json")
