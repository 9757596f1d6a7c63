"""No server paths in what users read (:mod:`ls_backend.redact`): file names stay, folders go,
URLs are left alone."""

from pathlib import Path

from ls_backend.redact import scrub
from ls_backend.settings import Settings


def test_paths_lose_their_folders_and_urls_stay(tmp_path):
    settings = Settings(model_dir=tmp_path / "models")
    assert scrub(settings, f"cannot read {tmp_path}/models/cars/a.obj: bad") == "cannot read a.obj: bad"
    assert scrub(settings, f"'{Path.home()}/weights/m.pth' missing") == "'m.pth' missing"
    url = f"https://labelstudio.example{tmp_path}/models/x.png"  # a URL whose path looks like the folder
    assert scrub(settings, f"fetch {url} failed") == f"fetch {url} failed"
    models = Settings(model_dir=Path("/srv/finepose-models"))
    assert scrub(models, "/srv/finepose-models/cars/a.obj") == "a.obj"
    assert scrub(models, "/srv/finepose-models-old/b.png") == "/srv/finepose-models-old/b.png"  # another folder
