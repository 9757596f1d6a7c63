"""No server paths in what users read: one rule for answers, pages and task fields.

:func:`scrubber` replaces each path under the server's own folders (``MODEL_DIR``, the work
folder, the registry's folder, the local-files roots, the home, temporary, current and Python
folders) by its last part, so a file name stays and the folders above it go. The log keeps
the full detail; HTTP answers, the editor's pages and the ``finepose_error`` task field go
through :func:`scrubber`.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

from ls_backend.settings import Settings


def scrubber(settings: Settings) -> Callable[[str], str]:
    """A function ``text -> text`` with the server's paths replaced by their file names."""
    return _scrubber(_roots(settings))


def scrub(settings: Settings, text: str) -> str:
    """``text`` through :func:`scrubber` of ``settings``."""
    return scrubber(settings)(text)


def _roots(settings: Settings) -> tuple[str, ...]:
    prefixes = {Path.home(), Path(tempfile.gettempdir()), Path.cwd(), Path(sys.prefix), Path(settings.model_dir),
                *settings.local_files_roots}
    if settings.registry is not None:
        prefixes.add(Path(settings.registry).parent)
    roots = set()
    for prefix in prefixes:
        for form in (prefix, prefix.absolute(), prefix.resolve()):
            text = str(form).rstrip(os.sep)
            if len(text) > 1:
                roots.add(text)
    return tuple(sorted(roots, key=len, reverse=True))


@lru_cache(maxsize=16)
def _scrubber(roots: tuple[str, ...]) -> Callable[[str], str]:
    if not roots:
        return lambda message: message
    # a root that starts a path: not the tail of a longer one or of a URL ("https://ls/data/..")
    pattern = re.compile(r"(?<![\w:/.-])(?:" + "|".join(re.escape(r) for r in roots) + r")(?![\w.-])(?:/[^\s'\",;()<>]*)?")

    def scrub_text(message: str) -> str:
        return pattern.sub(lambda m: Path(m.group(0)).name or "<server path>", str(message))

    return scrub_text
