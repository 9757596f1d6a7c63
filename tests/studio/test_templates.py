"""finepose's labeling configs refuse in Label Studio what finepose would refuse: every Number
has a min and a max inside what the backend accepts (Label Studio's editor then refuses a
typed value outside them on Submit)."""

from __future__ import annotations

import pytest

from ls_backend.studio.label_config import parse_label_config
from ls_backend.studio.validation import POSE_LIMITS
from ls_backend.templates import POSE_ANNOTATION, POSE_ANNOTATION_AIRCRAFT, read_template


@pytest.mark.parametrize("name", [POSE_ANNOTATION, POSE_ANNOTATION_AIRCRAFT])
def test_every_number_has_the_limits_the_backend_checks(name):
    config = parse_label_config(read_template(name))
    for number in config.numbers:
        spec = config.specs[number]
        assert spec.min is not None and spec.max is not None, f"{name}: <Number name={number!r}> needs min and max"
        if number in POSE_LIMITS:
            low, high = POSE_LIMITS[number]
            assert low <= spec.min and spec.max <= high, f"{name}: {number} [{spec.min}, {spec.max}] outside [{low}, {high}]"


@pytest.mark.parametrize("name", [POSE_ANNOTATION, POSE_ANNOTATION_AIRCRAFT])
def test_the_editor_link_shows_the_failure_reason(name):
    text = read_template(name)
    assert 'href=&quot;$editor&quot;' in text and "$finepose_error" in text
