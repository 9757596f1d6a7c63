import numpy as np
import pytest

from geometry.iou import Reference, iou
from geometry.masks import realistic_noise
from geometry.pose import Pose, wrap_degrees
from geometry.refine import FALLBACK_GAP, BandedObjective, ExactObjective, refine, refine_fast, refine_paper
from geometry.search import greedy_search

HIDDEN = Pose(azimuth=35, elevation=12, theta=3, distance=1.7, focal=330, u=150, v=105, width=300, height=200)
# Offsets like the release's human-vs-refined differences (degrees, units, px).
STARTS = [
    [5.0, -3.0, -2.5, 0.08, 20.0, -7.0, 6.0],
    [-4.0, 4.0, 2.0, -0.1, -25.0, 8.0, -5.0],
]


def test_greedy_search_is_algorithm_1():
    """On a separable quadratic: moves of +-alpha*eps, halving, stop once alpha <= min_alpha."""
    target = np.array([0.3, -0.7])
    calls = []

    def objective(x):
        calls.append(x.copy())
        return -float(((x - target) ** 2).sum())

    result = greedy_search(objective, [0.0, 0.0], steps=[0.1, 0.1], alpha=1.0, min_alpha=0.125)
    np.testing.assert_allclose(result.x, target, atol=1e-9)
    calls = np.array(calls)
    # alpha takes 1, 1/2, 1/4 (1/8 stops): every candidate lies on the 0.025 grid ...
    np.testing.assert_allclose(np.round(calls / 0.025) * 0.025, calls, atol=1e-12)
    # ... and candidates come in +- pairs along one coordinate.
    pairs = calls[1:].reshape(-1, 2, 2)
    differ = np.abs(pairs[:, 0] - pairs[:, 1]) > 1e-12
    assert np.all(differ.sum(axis=1) == 1)
    assert result.evaluations == len(calls)
    # The result is the best point the search ever evaluated.
    assert result.value == pytest.approx(-((calls - target) ** 2).sum(axis=1).min())


@pytest.mark.parametrize("method", ["paper", "fast"])
@pytest.mark.parametrize("offset", STARTS)
def test_refinement_recovers_a_hidden_pose_from_realistic_starts(car_renderer, method, offset):
    clean = car_renderer.render(HIDDEN)
    reference = realistic_noise(clean, np.random.default_rng(3), amplitude_px=1.5)
    start = HIDDEN.with_vector(HIDDEN.vector() + offset)
    result = refine(car_renderer, reference, start, method=method)
    assert result.iou_refined > result.iou_initial + 0.1
    assert result.iou_refined > 0.95
    error = result.refined.vector() - HIDDEN.vector()
    assert abs(wrap_degrees(error[0])) < 3.0
    assert abs(error[1]) < 3.0
    assert abs(error[5]) < 2.0 and abs(error[6]) < 2.0


def test_fast_reports_exact_iou_and_renders_less(car_renderer):
    reference = car_renderer.render(HIDDEN)
    start = HIDDEN.with_vector(HIDDEN.vector() + STARTS[0])
    fast = refine_fast(car_renderer, reference, start)
    paper = refine_paper(car_renderer, reference, start)
    assert fast.iou_refined == pytest.approx(iou(car_renderer.render(fast.refined), reference), abs=1e-12)
    assert fast.renders < paper.renders / 4
    assert fast.details["iterations"] > 0


def test_refine_rescales_pose_to_the_mask(car_renderer):
    reference = car_renderer.render(HIDDEN.rescaled(600, 400))
    start = HIDDEN.with_vector(HIDDEN.vector() + STARTS[1])
    result = refine(car_renderer, reference, start)
    assert (result.refined.width, result.refined.height) == (600, 400)
    assert result.iou_refined > 0.95


def test_unknown_method_and_empty_reference_are_refused(car_renderer):
    with pytest.raises(ValueError, match="unknown refinement method"):
        refine(car_renderer, np.ones((200, 300), bool), HIDDEN, method="magic")
    with pytest.raises(ValueError, match="empty"):
        refine(car_renderer, np.zeros((200, 300), bool), HIDDEN)


# A far start (50 degrees of azimuth, 40 px of focal, 18 px off) from which the outline fit
# and the ascent alone end in a wrong optimum (IoU ~0.77), and one from which even the
# fallback does (a mirrored-looking view).
FAR = [50.0, 10.0, -8.0, 0.1, -40.0, -15.0, 10.0]
LOST = [-40.0, -5.0, 10.0, -0.2, 30.0, 10.0, 5.0]


def test_a_far_start_is_recovered_by_the_fallback(car_renderer):
    reference = car_renderer.render(HIDDEN)
    start = HIDDEN.with_vector(HIDDEN.vector() + FAR)
    fit_only = refine_fast(car_renderer, reference, start, fallback=False)
    assert fit_only.iou_refined < 0.9
    assert fit_only.details["ceiling"] - fit_only.details["explained"] > FALLBACK_GAP  # what the fallback checks
    result = refine_fast(car_renderer, reference, start)
    assert result.iou_initial < 0.6
    assert result.details["restarted"] and result.details["fallback_sweeps"] > 0
    assert iou(car_renderer.render(result.refined), car_renderer.render(HIDDEN)) >= 0.99
    assert abs(wrap_degrees(result.refined.azimuth - HIDDEN.azimuth)) < 1.0


def test_a_near_start_takes_no_fallback(car_renderer):
    reference = car_renderer.render(HIDDEN)
    result = refine_fast(car_renderer, reference, HIDDEN.with_vector(HIDDEN.vector() + STARTS[0]))
    assert result.iou_refined > 0.99
    assert result.details["iterations"] > 0 and result.details["start"] == 0
    assert not result.details["restarted"] and result.details["fallback_sweeps"] == 0


def test_alternative_starts_go_through_the_same_path(car_renderer):
    """refine(..., extra_starts=...) fits every start and goes on from the best; the result
    still reports the first start's IoU."""
    reference = car_renderer.render(HIDDEN)
    start = HIDDEN.with_vector(HIDDEN.vector() + LOST)
    alone = refine(car_renderer, reference, start)
    assert alone.iou_refined < 0.95  # this start alone ends in the wrong optimum
    rival = HIDDEN.with_vector(HIDDEN.vector() + STARTS[1]).rescaled(600, 400)  # any size
    result = refine(car_renderer, reference, start, extra_starts=[rival])
    assert result.details["start"] == 1
    assert result.iou_initial == pytest.approx(alone.iou_initial)
    assert result.iou_refined > 0.99
    assert result.iou_refined == pytest.approx(iou(car_renderer.render(result.refined), reference), abs=1e-12)


def test_the_automatic_initial_pose_feeds_refine_with_its_hypotheses(car_renderer):
    from geometry.init_pose import initial_pose

    reference = car_renderer.render(HIDDEN)
    found = initial_pose(car_renderer, reference, elevations=(0.0, 20.0))
    assert [h.pose for h in found.hypotheses[1:]] == found.extra_starts
    result = refine(car_renderer, reference, found.hypotheses[0].pose, extra_starts=found.extra_starts)
    assert result.iou_refined >= max(h.iou for h in found.hypotheses) - 1e-9
    assert result.iou_refined > 0.98


def test_banded_objective_gives_the_exact_iou_along_a_search(car_renderer):
    """The fallback's searches cast rays only about the best pose's outline: along a whole
    Algorithm 1 run every candidate's IoU equals a bounding-box render's (the procedural
    car has no hairline cracks), and most candidates were band renders."""
    reference = realistic_noise(car_renderer.render(HIDDEN), np.random.default_rng(5), amplitude_px=2.0)
    start = HIDDEN.with_vector(HIDDEN.vector() + STARTS[1])
    banded = BandedObjective(car_renderer, Reference(reference), start)
    exact = ExactObjective(car_renderer, Reference(reference), start)
    band_renders, pairs = 0, []

    def checked(x):
        nonlocal band_renders
        anchor = banded.silhouettes.band
        value = banded(x)
        pose = start.with_vector(x)
        band_renders += anchor is not None and anchor.radius(pose) is not None
        pairs.append((value, exact(x)))
        return value

    x0 = start.vector()
    value0 = banded.anchor(x0)
    result = greedy_search(checked, x0, alpha=0.5, value0=value0)
    values = np.array(pairs)
    np.testing.assert_allclose(values[:, 0], values[:, 1], atol=1e-12)
    assert result.value > value0 + 0.1
    assert band_renders > 0.5 * len(pairs)


def test_a_thin_reference_still_gets_the_fallback(car_renderer):
    """A reference of thin parts only (a 2 px ring): smoothing erases it, so its outline
    ceiling says nothing; a result under the floor runs the fallback all the same."""
    from geometry.masks import border_pixels

    ring = border_pixels(car_renderer.render(HIDDEN), thickness=2)
    start = HIDDEN.with_vector(HIDDEN.vector() + [10.0, -4.0, 3.0, 0.0, 20.0, 6.0, -4.0])
    without = refine_fast(car_renderer, ring, start, fallback_floor=0.0)
    result = refine_fast(car_renderer, ring, start)
    assert result.details["ceiling"] < 0.5 and not without.details["restarted"]
    assert result.details["restarted"] and result.iou_refined >= without.iou_refined
