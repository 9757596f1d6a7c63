"""Giving a Label Studio project files it serves to its users, by one of Label Studio's two
routes:

- **local files**: a folder under Label Studio's local-files document root
  (``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``, only where Label Studio runs with
  ``LOCAL_FILES_SERVING_ENABLED=true``) becomes the project's Local Files import storage; a
  file's task URL is ``/data/local-files/?d=<path under the document root>``
  (:func:`serve_folder`). Label Studio serves such a file only to users who can see a
  project with a storage on its folder.
- **upload** (works on Label Studio's defaults): the files are uploaded to the project
  without creating tasks (``POST /api/projects/<id>/import?commit_to_project=false``); a
  file's task URL is ``/data/upload/<project>/<8 hex>-<name>`` (:func:`upload_files`).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from ls_backend.errors import ConfigError, UpstreamError
from ls_backend.studio.client import TIMEOUT_S, answered, one_line

UPLOAD_BATCH = 50  # files per upload request, at most
UPLOAD_BATCH_BYTES = 100 << 20  # and at most this many bytes (Label Studio refuses over 250 MB)
#: What Label Studio 1.23 accepts as an uploaded image file.
UPLOAD_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".svg", ".webp")


def give_files(connection, project_id: int, files: list[Path], folders: list[Path] | None = None,
               document_root: Path | None = None) -> dict[Path, str]:
    """Each of ``files``' task URL in the project, by one of the two routes: with ``folders``
    (holding the files, under Label Studio's ``document_root``) each folder becomes a Local
    Files storage of the project (one it already has is kept); without, the files are uploaded."""
    if not folders:
        return upload_files(connection, project_id, files) if files else {}
    client = connection.sdk()
    with answered(f"the storages of project {project_id}"):
        served = {Path(s.path).resolve() for s in client.import_storage.local.list(project=int(project_id)) if s.path}
    for folder in folders:
        if Path(folder).resolve() not in served:
            serve_folder(client, project_id, folder, document_root, title=Path(folder).name)
    return {f: local_file_url(f, document_root) for f in files}


def local_file_url(path: Path, document_root: Path) -> str:
    """The task URL of ``path`` (a file under Label Studio's local-files ``document_root``)."""
    relative = Path(path).resolve().relative_to(Path(document_root).resolve())
    return "/data/local-files/?d=" + quote(relative.as_posix())


def check_under_document_root(folder: Path, document_root: Path | None) -> None:
    """ConfigError unless ``folder`` lies under Label Studio's local-files document root."""
    if document_root is None:
        raise ConfigError("serving files as Label Studio local files needs LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT: "
                          "the folder Label Studio serves local files from (its LOCAL_FILES_DOCUMENT_ROOT)")
    if not Path(folder).resolve().is_relative_to(Path(document_root).resolve()):
        raise ConfigError(f"{folder} is not under Label Studio's local-files document root {document_root}")


def serve_folder(client, project_id: int, folder: Path, document_root: Path | None, title: str) -> None:
    """Make ``folder`` (under ``document_root``) a Local Files storage of the project, not
    synced (tasks are imported with :func:`local_file_url`)."""
    check_under_document_root(folder, document_root)
    with answered(f"a Local Files storage on {folder} for project {project_id} "
                  "(Label Studio must run with LOCAL_FILES_SERVING_ENABLED=true)"):
        client.import_storage.local.create(project=int(project_id), path=str(Path(folder).resolve()), title=title,
                                           use_blob_urls=False)


def _batches(paths: list[Path]):
    """``paths`` in upload requests of at most :data:`UPLOAD_BATCH` files and
    :data:`UPLOAD_BATCH_BYTES` bytes (a larger single file goes alone)."""
    batch, size = [], 0
    for path in paths:
        length = Path(path).stat().st_size
        if batch and (len(batch) == UPLOAD_BATCH or size + length > UPLOAD_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(path)
        size += length
    if batch:
        yield batch


def upload_files(connection, project_id: int, paths: list[Path]) -> dict[Path, str]:
    """Upload ``paths`` (distinct file names) to the project without creating tasks; returns
    each path's task URL."""
    import requests

    refused = [p.name for p in paths if p.suffix.lower() not in UPLOAD_SUFFIXES]
    if refused:
        raise ConfigError(f"Label Studio does not take uploads of {', '.join(refused[:5])}: convert them to "
                          f"{', '.join(UPLOAD_SUFFIXES)}, or serve the folder as local files")
    urls: dict[Path, str] = {}
    for batch in _batches(paths):
        # one form field per file: Label Studio keeps one file per field name
        files = [(f"file{i}", (p.name, p.read_bytes(), "application/octet-stream")) for i, p in enumerate(batch)]
        try:
            response = requests.post(f"{connection.url}/api/projects/{int(project_id)}/import",
                                     params={"commit_to_project": "false"}, files=files,
                                     headers=connection.headers(), timeout=TIMEOUT_S * 4)
        except requests.RequestException as exc:
            raise UpstreamError(f"cannot upload files to project {project_id}: {one_line(str(exc))}") from None
        if response.status_code >= 300:
            raise UpstreamError(f"Label Studio refused the upload to project {project_id}: HTTP "
                                f"{response.status_code} {one_line(response.text)}")
        try:
            ids = response.json().get("file_upload_ids") or []
        except (ValueError, AttributeError):
            raise UpstreamError(f"Label Studio answered the upload to project {project_id} with "
                                f"{one_line(response.text)!r}, not its JSON") from None
        with answered(f"the uploads of project {project_id}"):
            listed = connection.sdk().files.list(id=int(project_id), ids=json.dumps([int(i) for i in ids]))
        stored = {int(u.id): u.file for u in listed}
        # Label Studio answers the ids in the order of the form's fields; it names an upload
        # "upload/<project>/<8 hex>-<name>" (two files of one name, e.g. a photo and its mask, differ by id)
        if len(ids) != len(batch):
            raise UpstreamError(f"Label Studio kept {len(ids)} of {len(batch)} files uploaded to project {project_id}")
        for path, upload_id in zip(batch, ids):
            name = stored.get(int(upload_id), "")
            if not name.endswith("-" + path.name):
                raise UpstreamError(f"Label Studio did not keep the upload of {path.name} to project {project_id} "
                                    f"(upload {upload_id} is {name or 'missing'})")
            urls[path] = "/data/" + name.lstrip("/")
    return urls
