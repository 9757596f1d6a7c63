"""Fixtures every test folder shares. Tests mirror the packages (``geometry/``, ``studio/``,
``backend/``, ``editor/``, ``tools/``, ``e2e/``); their helpers live in ``tests/support/``
(data from ../shared/data: :mod:`tests.support.data`)."""

from __future__ import annotations

import numpy as np
import pytest


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
