"""``finepose refine-batch``: refine the poses of many images listed in a manifest, in
parallel and resumably.

Manifest: a JSON list of items, a JSON object ``{"items": [...]}``, or JSON lines (one item
per line). An item is an object with

- ``id`` (string, unique in the manifest),
- ``mesh`` (mesh file), ``mask`` (reference mask image),
- ``pose``: a pose JSON file, or the pose JSON itself, in any supported convention,
- optional ``frame`` (the mesh's frame name: the pose is expressed in it by the frame rule, as
  ``--frame`` everywhere) and ``image`` (carried along).

Relative paths resolve against the manifest's folder. The manifest is checked up front
(:class:`ManifestError`); a bad item found at run time (unreadable mesh, missing mask, NaN
pose) becomes an error line and the batch goes on.

Output: JSON lines, one per item, appended and flushed as results arrive (in any order):
``{"id", "mesh", "mask", ["image"], **RefineResult.to_dict()}`` or
``{"id", "mesh", "mask", ["image"], "error", ["transient"]}``. A rerun skips the ids that already
have a line and redoes a cut-short last line (:mod:`.jsonlines`); an error line is redone when
it is marked ``transient`` (its Ray worker was lost: not the item's fault) or with
``retry_failed`` (``--retry-failed``: a fixed input). :func:`read_results` reads the file
keyed by id (an id's last line wins).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from geometry.frames import FRAMES
from geometry.refine import METHODS

from ls_backend.errors import DataError
from ls_backend.tools.executors import Item, make_executor
from ls_backend.tools.jsonlines import LogWriter, read_log, resume

REQUIRED_KEYS = ("id", "mesh", "mask", "pose")
OPTIONAL_KEYS = ("frame", "image")


class ManifestError(DataError):
    """A manifest that cannot be used as it is."""


# -- manifest ------------------------------------------------------------------------------


def load_manifest(path: str | Path) -> list[Item]:
    """The validated items of the manifest at ``path``, in file order."""
    path = Path(path)
    records = _manifest_records(path)
    if not records:
        raise ManifestError(f"{path}: manifest has no items")
    items = [_item(record, number, path.parent.resolve()) for number, record in enumerate(records, 1)]
    _check_unique(items, path)
    return items


def _manifest_records(path: Path) -> list:
    """The raw item objects of a JSON (list or ``{"items": [...]}``) or JSON-lines file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"manifest file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _json_lines(text, path)
    if isinstance(data, dict) and "items" in data:
        data = data["items"]
    if isinstance(data, dict):  # a JSON-lines manifest of one item
        return [data]
    if not isinstance(data, list):
        raise ManifestError(f"{path}: a manifest is a list of items, {{\"items\": [...]}} or JSON lines")
    return data


def _json_lines(text: str, path: Path) -> list:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: line {number} is not valid JSON ({exc})") from None
    return records


def _item(record, number: int, folder: Path) -> Item:
    """Item ``number`` (1-based) of the manifest, its paths resolved against ``folder``."""
    if not isinstance(record, dict):
        raise ManifestError(f"manifest item {number}: an item must be a JSON object, got {type(record).__name__}")
    where = f"manifest item {number}" + (f" (id {record['id']!r})" if "id" in record else "")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ManifestError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(record) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}")
    for key in ("id", "mesh", "mask") + tuple(k for k in OPTIONAL_KEYS if record.get(k) is not None):
        if not isinstance(record[key], str) or not record[key]:
            raise ManifestError(f"{where}: {key} must be a non-empty string, got {record[key]!r}")
    if not isinstance(record["pose"], (str, dict)):
        raise ManifestError(f"{where}: pose must be a file path or a pose object, got {type(record['pose']).__name__}")
    if record.get("frame") is not None and record["frame"] not in FRAMES:
        raise ManifestError(f"{where}: unknown frame {record['frame']!r}; known: {', '.join(FRAMES)}")
    pose = record["pose"] if isinstance(record["pose"], dict) else _resolve(folder, record["pose"])
    image = record.get("image")
    return Item(
        id=record["id"],
        mesh=_resolve(folder, record["mesh"]),
        mask=_resolve(folder, record["mask"]),
        pose=pose,
        frame=record.get("frame"),
        image=None if image is None else _resolve(folder, image),
    )


def _resolve(folder: Path, path: str) -> str:
    return str(folder / Path(path).expanduser())


def _check_unique(items: list[Item], path: Path) -> None:
    counts = Counter(item.id for item in items)
    duplicates = [key for key, count in counts.items() if count > 1]
    if duplicates:
        raise ManifestError(f"{path}: duplicate id(s) {', '.join(map(repr, duplicates))}")


def group_by_mesh(items: list[Item]) -> list[Item]:
    """``items`` with those of one mesh together (manifest order otherwise), so that workers
    reuse each mesh's renderer."""
    first = {}
    for index, item in enumerate(items):
        first.setdefault(item.mesh, index)
    return sorted(items, key=lambda item: first[item.mesh])


# -- results file --------------------------------------------------------------------------


def read_results(path: str | Path) -> dict[str, dict]:
    """The records of a results file keyed by id (a cut-short last line is ignored)."""
    return {record["id"]: record for record in read_log(path, "id")}


# -- running -------------------------------------------------------------------------------


def run_batch(
    manifest: str | Path,
    out: str | Path,
    executor: str = "process",
    workers: int | None = None,
    method: str = "fast",
    ray_address: str | None = None,
    progress: bool | None = None,
    retry_failed: bool = False,
) -> dict:
    """Refine every manifest item without a line in ``out`` yet; append one line per item.

    ``progress``: a tqdm bar on stderr (None: only when stderr is a terminal). Returns
    ``{"done", "skipped", "failed", "total", "seconds", "items_per_second",
    "seconds_per_item", "executor", "workers", "out"}``: ``done``/``failed`` count this run's
    items, ``seconds`` is wall-clock time (worker start-up included), ``workers`` the
    processes used (0 when nothing was left to do).
    """
    if method not in METHODS:
        raise DataError(f"unknown refinement method {method!r}; use one of {', '.join(METHODS)}")
    items = load_manifest(manifest)
    out = Path(out)
    finished = {record["id"] for record in _last_records(resume(out, "id"))
                if "error" not in record or not (retry_failed or record.get("transient"))}
    todo = group_by_mesh([item for item in items if item.id not in finished])
    start = time.perf_counter()
    counts, workers = _execute(todo, out, executor, workers, method, ray_address, progress)
    seconds = time.perf_counter() - start
    ran = counts["done"] + counts["failed"]
    return {
        "done": counts["done"],
        "skipped": len(items) - len(todo),
        "failed": counts["failed"],
        "total": len(items),
        "seconds": seconds,
        "items_per_second": ran / seconds if ran else 0.0,
        "seconds_per_item": seconds / ran if ran else 0.0,
        "executor": executor,
        "workers": workers,
        "out": str(out),
    }


def _last_records(records: list[dict]) -> list[dict]:
    """Each id's last record."""
    return list({record["id"]: record for record in records}.values())


def _execute(todo, out: Path, executor, workers, method, ray_address, progress) -> tuple[Counter, int]:
    """Run ``todo`` on the named executor, appending each record to ``out`` as it arrives;
    returns the done/failed counts and the number of workers used (0 when nothing ran)."""
    from tqdm import tqdm

    counts = Counter(done=0, failed=0)
    runner = make_executor(executor, workers, len(todo), ray_address)
    if not todo:
        return counts, 0
    with runner, LogWriter(out) as log, tqdm(total=len(todo), unit="item", disable=None if progress is None else not progress) as bar:
        for record in runner.map(todo, method):
            log.write(record)
            counts["failed" if "error" in record else "done"] += 1
            bar.update()
    return counts, runner.workers
