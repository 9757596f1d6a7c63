"""The labeling config of a project whose photos name no model: the shipped pose template with
the registry's models as a ``Choices`` list named ``model`` (a drop-down beside the photo),
and without the pose editor's link (a ``$editor`` object Label Studio would require in the
data of every uploaded photo).

Label Studio's own *Import* (an uploaded photo) gives a task with no ``data.model``; the
backend then takes the model the annotator picked in this list, else the list's
``selected="true"`` choice, the project's default (:func:`ls_backend.studio.tasks.task_model`).
Each ``Choice`` shows the model id and is written into results as it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ls_backend.studio.label_config import MODEL_CHOICE
from ls_backend.errors import RegistryError
from ls_backend.registry.schema import Registry
from ls_backend.templates import POSE_ANNOTATION, POSE_ANNOTATION_AIRCRAFT, read_template

MARKER = "<!-- finepose:model-choices"
TEMPLATES = {"car": POSE_ANNOTATION, "aeroplane": POSE_ANNOTATION_AIRCRAFT}
HEADER = '<Header value="Pose of CAD model: $model" size="5"/>'  # $model: undefined without data.model
ERROR_HEADER = '  <Header value="$finepose_error" size="5" underline="false"/>'
EDITOR_LINK = re.compile(r'^[ \t]*<HyperText name="editor"[^>]*/>[ \t]*\n', re.MULTILINE)


def model_choices(model_ids, default: str | None = None) -> str:
    """The ``<Choices name="model">`` XML for ``model_ids`` (``default`` preselected)."""
    lines = [f'<Header value="CAD model" size="5"/>',
             f'<Choices name="{MODEL_CHOICE}" toName="image" layout="select" required="true" '
             f'requiredMessage="Pick the CAD model of this photo">']
    for model_id in model_ids:
        selected = ' selected="true"' if model_id == default else ""
        lines.append(f"  <Choice value={quoteattr(model_id)}{selected}/>")
    lines.append("</Choices>")
    return "\n".join("      " + line for line in lines) + "\n"


def label_config_for(registry: Registry, category: str | None = None, default: str | None = None) -> tuple[str, dict]:
    """(the pose template of ``category`` with ``registry``'s models of that category as the
    ``model`` list, a summary); ``category`` defaults to the registry's only category."""
    categories = sorted({e.category for e in registry.entries.values() if e.category})
    if category is None:
        if len(categories) != 1:
            raise RegistryError(f"the registry holds categories {', '.join(categories) or 'none'}: "
                                "name one with --category (one project per category)")
        category = categories[0]
    if category not in TEMPLATES:
        raise RegistryError(f"no pose template for category {category!r} (known: {', '.join(TEMPLATES)})")
    ids = sorted(model_id for model_id, e in registry.entries.items() if e.category == category)
    if not ids:
        raise RegistryError(f"the registry {registry.source} has no {category} models")
    if default is not None and default not in ids:
        raise RegistryError(f"--default {default!r} is not a {category} model of the registry (known: {', '.join(ids[:10])})")
    text = read_template(TEMPLATES[category])
    start = text.index(MARKER)
    line_start = text.rindex("\n", 0, start) + 1
    line_end = text.index("\n", start) + 1
    text = text[:line_start] + model_choices(ids, default) + text[line_end:]
    text = text.replace(HEADER, '<Header value="Pose of the CAD model picked beside the photo" size="5"/>')
    # The pose editor's link ($editor, a HyperText: an object tag, so a data key) would make
    # Label Studio refuse every uploaded photo ('"editor" key is expected in task data'): an
    # uploads project goes without it, and shows why finepose could not refine the task in a
    # Header instead (not an object tag: uploads still have one data key).
    text = EDITOR_LINK.sub(ERROR_HEADER + "\n", text)
    return text, {"category": category, "models": len(ids), "default": default}


def write_label_config(registry_path: str | Path, out: str | Path, category: str | None = None,
                       default: str | None = None) -> dict:
    """``finepose registry label-config``: write :func:`label_config_for` to ``out``."""
    text, summary = label_config_for(Registry.load(registry_path), category, default)
    Path(out).write_text(text, encoding="utf-8")
    return {"out": str(out), **summary}
