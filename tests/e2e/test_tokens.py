"""Both kinds of Label Studio token work for every call finepose makes, and a refused token
is one clear error naming LABEL_STUDIO_API_KEY (a real Label Studio 1.23.2, default settings)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PIL import Image

from ls_backend.studio import client as labelstudio
from ls_backend.studio import media
from ls_backend.errors import CredentialsError
from ls_backend.settings import Settings
from tests.support.label_studio import login, session_api

pytestmark = pytest.mark.e2e


def photo_task(ls, tmp_path):
    client = ls.client()
    project = client.projects.create(title=f"tokens {ls.token_kind}", label_config="<View><Image name='image' value='$image'/></View>")
    folder = ls.local_storage(project.id, f"tokens-{ls.token_kind}")
    Image.new("RGB", (64, 48), (200, 40, 40)).save(folder / "a.png")
    return ls.local_file_url(folder / "a.png")


def test_a_pat_is_exchanged_and_refreshed_before_it_expires(label_studio, tmp_path, monkeypatch):
    ls = label_studio
    settings = Settings(label_studio_url=ls.url, api_key=ls.api_key, model_dir=tmp_path)
    connection = labelstudio.connection(settings)
    assert connection.kind == "personal access token"
    first = connection.access_token()
    assert first != ls.api_key and connection.authorization() == f"Bearer {first}"
    assert connection.access_token() == first  # cached while far from expiry
    monkeypatch.setattr(labelstudio, "REFRESH_MARGIN_S", 10_000.0)  # Label Studio's access tokens live 300 s
    second = connection.access_token()
    assert second != first  # exchanged again before it expired
    # a media download and an SDK call both work with the exchanged token
    url = photo_task(ls, tmp_path)
    assert media.fetch(url, settings, task_id=1).read_bytes()[:4] == b"\x89PNG"
    assert connection.sdk().users.whoami().email == ls.username


def test_a_legacy_token_works_where_the_organization_allows_it(label_studio_legacy, tmp_path):
    ls = label_studio_legacy
    settings = Settings(label_studio_url=ls.url, api_key=ls.api_key, model_dir=tmp_path)
    connection = labelstudio.connection(settings)
    assert connection.kind == "legacy" and connection.authorization() == f"Token {ls.api_key}"
    url = photo_task(ls, tmp_path)
    assert media.fetch(url, settings, task_id=1).read_bytes()[:4] == b"\x89PNG"


def test_refused_tokens_name_the_variable(label_studio, tmp_path):
    ls = label_studio
    session = login(ls.url, ls.username, ls.password)
    legacy = session_api(session, ls.url, "GET", "/api/current-user/token").json()["token"]
    base = Settings(label_studio_url=ls.url, api_key="", model_dir=tmp_path)
    cases = {
        legacy: "legacy tokens are off in this organization",  # Label Studio's default
        ls.api_key[:-4] + "AAAA": "copy a valid Personal Access Token",  # a damaged signature
        "not-a-token": "copy a valid Personal Access Token",
    }
    for key, hint in cases.items():
        with pytest.raises(CredentialsError, match="LABEL_STUDIO_API_KEY") as error:
            labelstudio.connection(replace(base, api_key=key))
        assert hint in str(error.value) and error.value.status == 503
    with pytest.raises(CredentialsError, match="LABEL_STUDIO_API_KEY"):
        labelstudio.connection(base)  # no token at all
