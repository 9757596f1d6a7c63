"""The shared research data (``../shared/data``, or ``FINEPOSE_DATA``): optional. Tests that
need it skip, saying why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(os.environ.get("FINEPOSE_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """A path under the shared data folder, or skip the test when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared research data not found: {path} (tests on real data need ../shared/data)")
    return path
