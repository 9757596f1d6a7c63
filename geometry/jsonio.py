"""JSON files read with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path


def read_json(path: str | Path, what: str, error: type[Exception] = ValueError, hint: str = ""):
    """The JSON content of ``path``; ``error`` when the file is missing (``"<what> not found:
    <path><hint>"``) or is not JSON (``"<path>: not valid JSON (...)"``)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} not found: {path}{hint}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from None
