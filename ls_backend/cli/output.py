"""What commands share: JSON on stdout, the exit status of a partial failure, and the ``WxH``
size argument."""

from __future__ import annotations

import argparse
import json
import sys

#: Exit status of a command that did its work but some items failed (``prelabel``).
SOME_FAILED = 3


def print_json(data) -> None:
    """``data`` as indented JSON on stdout."""
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def size(text: str) -> tuple[int, int]:
    """An argparse type: ``600x400`` -> ``(600, 400)`` (width, height in pixels, positive)."""
    try:
        width, height = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 600x400, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height
