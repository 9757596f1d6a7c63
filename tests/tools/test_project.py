"""``project create``'s inputs without Label Studio: photo folders, per-photo model lists,
which labeling config goes with which route (the whole flow: tests/e2e/test_project_e2e.py)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from ls_backend.errors import DataError, UnknownModelError
from ls_backend.registry import Registry
from ls_backend.tools.project import _assign, _label_config, photo_files, read_models_csv


@pytest.fixture
def registry(tmp_path, car):
    from geometry.mesh import save_mesh

    save_mesh(tmp_path / "car.ply", car)
    (tmp_path / "registry.json").write_text(json.dumps({
        "a": {"mesh": "car.ply", "category": "car"}, "b": {"mesh": "car.ply", "category": "car"},
        "jet": {"mesh": "car.ply", "category": "aeroplane"}}))
    return Registry.load(tmp_path / "registry.json")


def test_photos_and_model_lists(tmp_path, registry):
    with pytest.raises(DataError, match="not found"):
        photo_files(tmp_path / "none")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="holds no photos"):
        photo_files(tmp_path / "photos")
    for name in ("b.JPG", "a.png"):
        Image.new("RGB", (40, 30)).save(tmp_path / "photos" / name, format="PNG")
    files = photo_files(tmp_path / "photos")
    assert [p.name for p in files] == ["a.png", "b.JPG"]
    (tmp_path / "models.csv").write_text("photo,model\na.png, a\n")
    assert read_models_csv(tmp_path / "models.csv") == {"a.png": "a"}
    assigned, left_out = _assign(files, registry, None, read_models_csv(tmp_path / "models.csv"))
    assert assigned == {"a.png": "a"} and left_out == {"b.JPG"}
    with pytest.raises(UnknownModelError):
        _assign(files, registry, "nope", None)
    with pytest.raises(DataError, match="not both"):
        _assign(files, registry, "a", {"a.png": "a"})
    # uploads: the model list (one data key), the given model preselected; local files: the template
    category, config = _label_config(registry, {"a.png": "a", "b.JPG": "a"}, files, local=False)
    assert category == "car" and '<Choices name="model"' in config and "$editor" not in config
    assert 'value="a" selected="true"' in config
    _, config = _label_config(registry, {"a.png": "a", "b.JPG": "a"}, files, local=True)
    assert "$editor" in config and '<Choices name="model"' not in config
    with pytest.raises(DataError, match="several categories"):
        _label_config(registry, {"a.png": "a", "b.JPG": "jet"}, files, local=False)
