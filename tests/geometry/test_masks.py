"""Mask resizing (geometry/masks.py): a new pixel is in when at least half of its area was."""

import numpy as np

import pytest

from geometry.images import ImageError, as_rgb
from geometry.iou import iou, ious
from geometry.masks import border_pixels, resize_mask


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


def test_border_pixels_of_any_thickness_are_a_band_inside_the_outline():
    mask = np.zeros((12, 14), bool)
    mask[2:10, 3:12] = True  # 8 x 9
    one, two = border_pixels(mask), border_pixels(mask, thickness=2)
    assert one.sum() == 2 * 8 + 2 * 9 - 4 and two.sum() == one.sum() + 2 * 6 + 2 * 7 - 4
    assert not (one & ~mask).any() and (two >= one).all()
    full = np.ones((5, 5), bool)  # pixels off the image count as outside
    assert border_pixels(full).sum() == 16


def test_ious_of_many_masks_at_once_match_iou(rng):
    reference = rng.random((20, 30)) > 0.5
    masks = rng.random((4, 20, 30)) > 0.5
    masks[3] = False
    values = ious(masks, reference)
    assert values.shape == (4,)
    assert values[:3] == pytest.approx([iou(m, reference) for m in masks[:3]])
    assert values[3] == 0.0 and iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        iou(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def test_as_rgb_makes_uint8_rgb_of_any_image():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert as_rgb(grey).shape == (2, 3, 3) and (as_rgb(grey)[..., 1] == grey).all()
    rgba = np.zeros((2, 3, 4), np.uint8)
    assert as_rgb(rgba).shape == (2, 3, 3)
    assert as_rgb(np.array([[0.0, 1.0, np.nan]])).tolist() == [[[0] * 3, [255] * 3, [0] * 3]]
    assert as_rgb(np.array([[0, 65535]], np.uint16))[0, :, 0].tolist() == [0, 255]
    assert as_rgb(np.array([[True, False]]))[0, :, 0].tolist() == [255, 0]
    with pytest.raises(ImageError, match="HxW, HxWx3 or HxWx4"):
        as_rgb(np.zeros((2, 3, 2)))


def test_one_binarisation_rule_for_every_mask_image():
    """Over half brightness in any colour channel; 0/1 label images count 1 as inside; alpha
    is ignored. The CLI (read_mask) and the backend (data.reference) read a mask alike."""
    from geometry.masks import binarize

    grey = np.array([[0, 100, 128, 255]], np.uint8)
    assert binarize(grey).tolist() == [[False, False, True, True]]
    assert binarize(np.array([[0, 1]], np.uint8)).tolist() == [[False, True]]  # a label image
    assert binarize(np.array([[0.2, 0.7]])).tolist() == [[False, True]]
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0, 3] = 255  # alpha only: outside
    rgba[0, 1, 1] = 200
    assert binarize(rgba).tolist() == [[False, True]]
    assert binarize(np.array([[0, 40000]], np.uint16)).tolist() == [[False, True]]


def test_work_size_and_outline_thickness():
    from geometry.masks import outline_thickness, work_size

    assert work_size(1200, 800, 300) == (300, 200)
    assert work_size(200, 100, 300) == (200, 100)  # never wider than the photo
    assert outline_thickness(800, 600) == 2 and outline_thickness(200, 100) == 1
    assert outline_thickness(200, 100, minimum=2) == 2
