"""Shared fixtures. Data from ../shared/data is optional: tests that need it skip, saying why."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("FINEPOSE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """A path under the shared data folder, or skip the test when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared research data not found: {path} (tests on real data need ../shared/data)")
    return path


@pytest.fixture(scope="session")
def car():
    from geometry.procedural import car_mesh

    return car_mesh()


@pytest.fixture(scope="session")
def car_renderer(car):
    from geometry.render import SilhouetteRenderer

    return SilhouetteRenderer(car)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
