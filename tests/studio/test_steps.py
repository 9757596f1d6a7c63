"""Numbers a prediction writes fit the project's own Number steps (Label Studio's editor
refuses a value off the grid ``min + k * step``: "Number ... is not valid")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ls_backend.studio.label_config import NumberSpec, parse_label_config
from ls_backend.errors import LabelConfigError
from ls_backend.templates import POSE_ANNOTATION, POSE_ANNOTATION_AIRCRAFT, read_template


def editor_accepts(spec: NumberSpec, n: float) -> bool:
    """Label Studio 1.23's Number.validateValue, transcribed (web/dist 358.js)."""
    if spec.min is not None and n < spec.min or spec.max is not None and n > spec.max:
        return False
    if spec.step is None:
        return True
    s = spec.min if spec.min is not None else 0.0
    r = n - s
    a = round(r / spec.step) * spec.step + s  # JS Math.round: ties up; ties are not at issue here
    return abs(n - a) <= 1e-8


@pytest.mark.parametrize("attrs", [
    {"min": "0", "max": "360", "step": "0.1"}, {"min": "-180", "max": "180", "step": "0.3"},
    {"step": "0.25"}, {"min": "0.0001", "step": "0.0001"}, {"min": "1", "step": "5"},
    {"min": "-2.5", "max": "7", "step": "0.05"}, {}, {"min": "0", "max": "1"},
])
def test_fitted_values_pass_the_editors_check(attrs, rng):
    spec = NumberSpec.from_attributes("x", attrs)
    for value in np.concatenate([rng.uniform(-400, 400, 300), rng.uniform(-1, 3, 300)]):
        fitted = spec.fit(value)
        assert editor_accepts(spec, fitted), (attrs, value, fitted)
        if spec.step and (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max):
            assert abs(fitted - value) <= spec.step / 2 + 1e-9  # the nearest grid point


def test_the_issues_example_and_the_templates_steps():
    config = parse_label_config(read_template(POSE_ANNOTATION))
    assert config.fit("azimuth", 238.695195) == 238.7  # refused as 238.695195 with step 0.01 before
    assert config.fit("distance", 2.718281) == 2.72 and config.fit("focal", 563.94) == 563.9
    steps = {name: spec.step for name, spec in config.specs.items()}
    assert steps == {"azimuth": 0.1, "elevation": 0.1, "theta": 0.1, "distance": 0.01, "focal": 0.1, "u": 0.1,
                     "v": 0.1, "iou_before": 0.001, "iou_after": 0.001}
    assert parse_label_config(read_template(POSE_ANNOTATION_AIRCRAFT)).specs == config.specs


def test_a_config_with_other_steps_is_followed():
    xml = read_template(POSE_ANNOTATION).replace('name="azimuth" toName="image" min="0" max="360" step="0.1"',
                                                 'name="azimuth" toName="image" min="0" max="360" step="0.5"')
    config = parse_label_config(xml)
    assert config.fit("azimuth", 12.3) == 12.5 and config.fit("azimuth", 359.9) == 360.0


@pytest.mark.parametrize("attrs", [{"step": "0"}, {"step": "-1"}, {"min": "x"}, {"min": "5", "max": "1"}])
def test_unusable_number_attributes_are_named(attrs):
    with pytest.raises(LabelConfigError, match="<Number name='azimuth'>"):
        NumberSpec.from_attributes("azimuth", attrs)


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError):
        NumberSpec(step=0.1).fit(math.nan)
