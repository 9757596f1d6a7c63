"""Mask resizing (geometry/masks.py): a new pixel is in when at least half of its area was."""

import numpy as np

from geometry.masks import resize_mask


def test_shrinking_by_a_whole_factor_is_the_block_majority(rng):
    mask = rng.random((60, 90)) > 0.5
    expected = mask.reshape(20, 3, 30, 3).mean(axis=(1, 3)) >= 0.5
    np.testing.assert_array_equal(resize_mask(mask, 30, 20), expected)


def test_growing_by_a_whole_factor_repeats_pixels(rng):
    mask = rng.random((12, 18)) > 0.5
    np.testing.assert_array_equal(resize_mask(mask, 36, 24), mask.repeat(2, axis=0).repeat(2, axis=1))


def test_any_factor_uses_exact_area_fractions(rng):
    """17x23 -> 7x10: each new pixel covers 17/7 x 23/10 old ones; repeating the old pixels
    7 and 10 times makes every new pixel a whole 17x23 block of the repeated grid."""
    mask = rng.random((17, 23)) > 0.4
    fine = mask.repeat(7, axis=0).repeat(10, axis=1)
    fractions = fine.reshape(7, 17, 10, 23).mean(axis=(1, 3))
    np.testing.assert_array_equal(resize_mask(mask, 10, 7), fractions >= 0.5 - 1e-9)
    np.testing.assert_array_equal(resize_mask(mask, 23, 17), mask)  # same size: unchanged
