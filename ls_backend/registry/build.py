"""``finepose registry``: build the mesh registry the backend reads,
``{"<category or model id>": {"mesh": "<path>", "frame": "<frame name>", ...}}``.

``registry match`` matches fine-grained category names ("Audi TT Hatchback 2011") to CAD
model names from metadata (``{model_id: name}`` as JSON, or a CSV with an id column
``fullId``/``model_id``/``id`` — ShapeNet's ``wss.`` prefix is dropped — and a ``name``
column):

- names are normalised (ASCII, lower case, split into letter/digit tokens; 4-digit tokens
  1900-2099 are years); an **exact** match has the same tokens in any order, or the same
  characters once spaces and punctuation are dropped ("F-150" = "F150"), and must be unique;
- otherwise models are ranked by ``score = 0.8 * tokens + 0.2 * year`` in [0, 1]: ``tokens`` is
  an F1 of soft token matches (difflib ratio >= 0.8 counts its ratio, else 0) over the
  non-year tokens; ``year`` is 1 when the category's year is one of the model's years or in
  their range, ``1 - gap / 5`` (not below 0) otherwise, 0.5 when either side has none.
  ``--accept S`` takes a best suggestion scoring >= S when no other model ties it; everything
  else is listed as unmatched with its suggestions, for a human to choose.

``registry from-cad`` reads the release's ``CAD/*.txt``: one ShapeNetCore.v1 model id per
line, line i belonging to category i (1-based, the original dataset's class order; the file
holds no names — give them with ``--names``, one per line in the same order). Several
categories may share a model.

Mesh paths: ``--shapenet-root ROOT --synset car|airplane|<8 digits>`` gives
``ROOT/<synset>/<model_id>/model.obj`` (ShapeNetCore.v1 layout; absolute), or
``--mesh-template`` any string with ``{model_id}`` (relative paths are read from the
registry's folder). The frame defaults to ``shapenet_core``, the files' own (release poses are
converted to it; see :mod:`geometry.frames`). Every entry gets
the registry's required ``category`` (it picks the segmentation classes): ``--category``, or
the one the ShapeNet synset names (02958343 car, 02691156 aeroplane); nothing is guessed.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from geometry.jsonio import read_json
from ls_backend.errors import RegistryError
from ls_backend.registry.schema import CATEGORIES

SYNSETS = {"car": "02958343", "airplane": "02691156", "aeroplane": "02691156"}
SYNSET_CATEGORIES = {"02958343": "car", "02691156": "aeroplane"}
TOKEN_WEIGHT, YEAR_WEIGHT = 0.8, 0.2
SOFT_TOKEN_RATIO = 0.8
YEAR_SCALE = 5.0
RELEASE_MESH_FRAME = "shapenet_core"  # the frame of the release's ShapeNetCore files (geometry.frames)
MODEL_ID = re.compile(r"[0-9a-f]{20,32}")


@dataclass(frozen=True)
class Name:
    """A normalised name: non-year tokens, years, and the tokens run together."""

    tokens: tuple[str, ...]
    years: tuple[int, ...]
    compact: str


def normalise(text: str) -> Name:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    tokens = re.findall(r"[a-z0-9]+", ascii_text.replace("&", " and "))
    years = tuple(sorted(int(t) for t in tokens if re.fullmatch(r"(19|20)\d\d", t)))
    words = tuple(t for t in tokens if not re.fullmatch(r"(19|20)\d\d", t))
    return Name(words, years, "".join(tokens))


def is_exact(a: Name, b: Name) -> bool:
    """Same tokens in any order, or the same characters without spaces and punctuation."""
    return (sorted(a.tokens), a.years) == (sorted(b.tokens), b.years) or a.compact == b.compact


def token_similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """F1 of soft token matches (difflib ratio >= SOFT_TOKEN_RATIO counts its ratio)."""
    if not a or not b:
        return 0.0

    def best(token, others):
        scores = [1.0 if token == o else difflib.SequenceMatcher(None, token, o).ratio() for o in others]
        top = max(scores)
        return top if top >= SOFT_TOKEN_RATIO else 0.0

    recall = sum(best(t, b) for t in a) / len(a)
    precision = sum(best(t, a) for t in b) / len(b)
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


def year_similarity(category_years: tuple[int, ...], model_years: tuple[int, ...]) -> float:
    if not category_years or not model_years:
        return 0.5
    low, high = min(model_years), max(model_years)
    gap = min(max(0, low - y, y - high) for y in category_years)
    return max(0.0, 1.0 - gap / YEAR_SCALE)


def score(category: Name, model: Name) -> float:
    """Similarity in [0, 1]; 1.0 for an exact match."""
    if is_exact(category, model):
        return 1.0
    return TOKEN_WEIGHT * token_similarity(category.tokens, model.tokens) + YEAR_WEIGHT * year_similarity(
        category.years, model.years
    )


def match_categories(
    categories: list[str], metadata: dict[str, str], top: int = 3, accept: float | None = None
) -> dict:
    """Match each category to a model id: ``{"matched": {category: {model_id, name, match, score}},
    "suggestions": {category: [{model_id, name, score}, ...]}, "unmatched": [category, ...]}``.

    Only models sharing a token (or its first 3 letters) with the category are scored.
    """
    names = {model_id: normalise(name) for model_id, name in metadata.items()}
    index = defaultdict(set)
    for model_id, name in names.items():
        for token in name.tokens:
            index[token].add(model_id)
            index[token[:3]].add(model_id)
    report = {"matched": {}, "suggestions": {}, "unmatched": []}
    for category in tqdm(categories, desc="match", unit="category"):
        wanted = normalise(category)
        candidates = set().union(*(index.get(t, set()) | index.get(t[:3], set()) for t in wanted.tokens))
        ranked = sorted(((score(wanted, names[m]), m) for m in candidates), key=lambda x: (-x[0], x[1]))
        suggestions = [{"model_id": m, "name": metadata[m], "score": round(s, 4)} for s, m in ranked[:top]]
        exact = [m for s, m in ranked if s == 1.0 and is_exact(wanted, names[m])]
        if len(exact) == 1:
            report["matched"][category] = {
                "model_id": exact[0],
                "name": metadata[exact[0]],
                "match": "exact",
                "score": 1.0,
            }
        elif (
            accept is not None
            and not exact
            and ranked
            and ranked[0][0] >= accept
            and (len(ranked) == 1 or ranked[1][0] < ranked[0][0])
        ):
            s, m = ranked[0]
            report["matched"][category] = {
                "model_id": m,
                "name": metadata[m],
                "match": "accepted",
                "score": round(s, 4),
            }
        else:
            report["unmatched"].append(category)
            report["suggestions"][category] = suggestions
    return report


def read_metadata(path: str | Path) -> dict[str, str]:
    """``{model_id: name}`` from a JSON object or a CSV (id column fullId/model_id/id, name column)."""
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"metadata file not found: {path}")
    if path.suffix.lower() == ".json":
        data = read_json(path, "metadata file", RegistryError)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise RegistryError(f"{path}: metadata JSON must be an object {{model_id: name}}")
        metadata = data
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        columns = rows[0].keys() if rows else []
        id_column = next((c for c in ("fullId", "model_id", "modelId", "id") if c in columns), None)
        if id_column is None or "name" not in columns:
            raise RegistryError(
                f"{path}: metadata CSV needs an id column (fullId, model_id, modelId or id) and a "
                f"name column; found {', '.join(columns) or 'no rows'}"
            )
        metadata = {r[id_column].removeprefix("wss."): r["name"] for r in rows if r[id_column] and r["name"]}
    if not metadata:
        raise RegistryError(f"{path}: no named models in the metadata")
    return metadata


def read_lines(path: str | Path, what: str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"{what} file not found: {path}")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise RegistryError(f"{path}: no {what} in the file")
    if "" in lines:
        raise RegistryError(f"{path}: line {lines.index('') + 1} is empty; one {what} per line")
    return lines


def read_cad_list(path: str | Path) -> list[str]:
    """The release's ``CAD/*.txt``: model id of category i on line i."""
    ids = read_lines(path, "model id")
    bad = [(i + 1, x) for i, x in enumerate(ids) if not MODEL_ID.fullmatch(x)]
    if bad:
        raise RegistryError(f"{path}: line {bad[0][0]} is not a ShapeNet model id: {bad[0][1]!r}")
    return ids


def mesh_path_function(shapenet_root: str | Path | None = None, synset: str | None = None,
                       mesh_template: str | None = None):
    """model id -> mesh path, from ``shapenet_root`` and ``synset`` or from ``mesh_template``."""
    if bool(shapenet_root) == bool(mesh_template):
        raise RegistryError("give either --shapenet-root (with --synset) or --mesh-template")
    if mesh_template:
        if "{model_id}" not in mesh_template:
            raise RegistryError(f"--mesh-template must contain {{model_id}}, got {mesh_template!r}")
        return lambda model_id: mesh_template.replace("{model_id}", model_id)
    code = SYNSETS.get((synset or "").lower(), synset)
    if not code or not re.fullmatch(r"\d{8}", code):
        raise RegistryError(f"--synset must be car, airplane or an 8-digit ShapeNet synset, got {synset!r}")
    root = Path(shapenet_root).absolute()
    return lambda model_id: str(root / code / model_id / "model.obj")


def registry_category(category: str | None, synset: str | None) -> str:
    """The registry ``category`` of every entry: ``category`` when given, else the one the
    ShapeNet ``synset`` (name or 8-digit id) names; :class:`RegistryError` naming the flag otherwise."""
    if category is not None:
        if category not in CATEGORIES:
            raise RegistryError(f"--category must be one of {', '.join(CATEGORIES)}, got {category!r}")
        return category
    found = SYNSET_CATEGORIES.get(SYNSETS.get(synset, synset)) if synset else None
    if found is None:
        raise RegistryError(
            f"give --category ({', '.join(CATEGORIES)}): it picks the segmentation classes, and "
            f"{'--synset ' + repr(synset) if synset else 'no --synset'} does not name one"
        )
    return found


def build_registry(assignments: dict[str, str], mesh_path, frame: str, by: str, category: str,
                   extra: dict | None = None) -> dict:
    """Registry from ``fine-grained class -> model id``: keyed by class (with ``model_id``) or
    by model (with its ``categories``, the fine-grained classes); every entry has ``frame`` and
    the segmentation ``category``."""
    registry = {}
    for name, model_id in assignments.items():
        if by == "category":
            registry[name] = {
                "mesh": mesh_path(model_id),
                "frame": frame,
                "category": category,
                "model_id": model_id,
                **(extra or {}).get(name, {}),
            }
        else:
            entry = registry.setdefault(
                model_id, {"mesh": mesh_path(model_id), "frame": frame, "category": category, "categories": []}
            )
            entry["categories"].append(name)
    return registry


def _write_registry(path: str, registry: dict) -> dict:
    Path(path).write_text(json.dumps(registry, indent=2) + "\n")
    existing = sum(Path(e["mesh"]).is_file() for e in registry.values())
    return {"registry": str(path), "entries": len(registry), "mesh_files_found": existing}


def match_registry(categories: str | Path, metadata: str | Path, out: str | Path, *,
                   shapenet_root: str | Path | None = None, synset: str | None = None,
                   mesh_template: str | None = None, category: str | None = None, frame: str = RELEASE_MESH_FRAME,
                   by: str = "category", top: int = 3, accept: float | None = None,
                   report: str | Path | None = None) -> dict:
    """``registry match``: match the category names in the file ``categories`` to the models
    of ``metadata``, write the registry of the matches to ``out`` (mesh paths by
    :func:`mesh_path_function`, the segmentation category by :func:`registry_category`) and
    the whole report to ``report``; returns ``{"summary", "matched", "suggestions", "unmatched"}``."""
    if top < 1:
        raise RegistryError(f"--top must be at least 1, got {top}")
    if accept is not None and not 0.0 <= accept <= 1.0:
        raise RegistryError(f"--accept must be a score in [0, 1], got {accept}")
    names = read_lines(categories, "category")
    models = read_metadata(metadata)
    mesh_path = mesh_path_function(shapenet_root, synset, mesh_template)
    category = registry_category(category, synset)
    matches = match_categories(names, models, top=top, accept=accept)
    assignments = {c: m["model_id"] for c, m in matches["matched"].items()}
    extra = {c: {"match": m["match"], "score": m["score"]} for c, m in matches["matched"].items()}
    summary = _write_registry(out, build_registry(assignments, mesh_path, frame, by, category, extra))
    summary.update(
        {
            "categories": len(names),
            "exact": sum(m["match"] == "exact" for m in matches["matched"].values()),
            "accepted": sum(m["match"] == "accepted" for m in matches["matched"].values()),
            "unmatched": len(matches["unmatched"]),
        }
    )
    if report:
        Path(report).write_text(json.dumps(matches, indent=2) + "\n")
        summary["report"] = str(report)
    return {"summary": summary, **matches}


def registry_from_cad(cad: str | Path, out: str | Path, *, names: str | Path | None = None,
                      shapenet_root: str | Path | None = None, synset: str | None = None,
                      mesh_template: str | None = None, category: str | None = None, frame: str = RELEASE_MESH_FRAME,
                      by: str = "model") -> dict:
    """``registry from-cad``: the registry of the release's CAD list ``cad`` (category i ->
    model id on line i), categories named by the file ``names`` (else 1, 2, ...); written to
    ``out``; returns a summary."""
    ids = read_cad_list(cad)
    if names:
        labels = read_lines(names, "category name")
        if len(labels) != len(ids):
            raise RegistryError(f"{names} has {len(labels)} names but {cad} has {len(ids)} model ids")
        if len(set(labels)) != len(labels):
            raise RegistryError(f"{names}: category names must be unique")
    else:
        labels = [str(i + 1) for i in range(len(ids))]
    mesh_path = mesh_path_function(shapenet_root, synset, mesh_template)
    registry = build_registry(dict(zip(labels, ids)), mesh_path, frame, by, registry_category(category, synset))
    summary = _write_registry(out, registry)
    summary.update({"categories": len(ids), "models": len(set(ids))})
    return summary
