"""Patch extraction at a model spacing and mapping back to the source grid."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.models.config import PatchSpec
from medsnowball.models.patches import extract_patches, normalize_hu, patch_to_source


def _ball(shape, spacing, centre, radius_mm, inside=40.0, outside=-1000.0):  # type: ignore[no-untyped-def]
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(np.float64)
    r = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip((z, y, x), centre, spacing, strict=True)))
    return np.where(r < radius_mm, inside, outside).astype(np.float32), r < radius_mm


def test_patch_is_centred_and_at_the_model_spacing() -> None:
    spacing = (2.5, 0.7, 0.7)
    centre = (12.4, 40.0, 33.3)
    arr, _ = _ball((25, 80, 80), spacing, centre, 6.0)
    spec = PatchSpec((20, 20, 20), (1.0, 1.0, 1.0), hu_min=-1000, hu_max=40)
    p = extract_patches(arr, spacing, [centre], spec)[0]
    com = np.argwhere(p > 0.5).mean(axis=0)
    np.testing.assert_allclose(com, [9.5, 9.5, 9.5], atol=0.35)
    # 12 mm ball at 1 mm voxels: ~905 voxels whatever the source spacing
    assert (p > 0.5).sum() == pytest.approx(4 / 3 * np.pi * 6**3, rel=0.12)


def test_outside_the_image_is_air_and_batches_agree() -> None:
    arr = np.zeros((10, 10, 10), np.float32)
    spec = PatchSpec((8, 8, 8), (1.0, 1.0, 1.0), hu_min=-1000, hu_max=0)
    centres = [(0, 0, 0), (5, 5, 5), (9.5, 9.5, 9.5)]
    one = extract_patches(arr, (1, 1, 1), centres, spec, batch_size=1)
    three = extract_patches(arr, (1, 1, 1), centres, spec, batch_size=3)
    np.testing.assert_array_equal(one, three)
    assert one[0, 0, 0, 0] == 0.0  # out of the image -> air -> 0
    assert one[1].min() == 1.0  # fully inside the (0 HU) image
    assert extract_patches(arr, (1, 1, 1), np.zeros((0, 3)), spec).shape == (0, 8, 8, 8)


def test_patch_to_source_recovers_the_mask() -> None:
    spacing = (2.0, 0.8, 0.8)
    centre = (20.3, 30.0, 25.5)
    arr, truth = _ball((40, 60, 60), spacing, centre, 5.0)
    spec = PatchSpec((16, 16, 16), (1.0, 1.0, 1.0), hu_min=-1000, hu_max=40)
    p = extract_patches(arr, spacing, [centre], spec)[0]
    values, off = patch_to_source(p, centre, spacing, arr.shape, spec)
    full = np.zeros(arr.shape, bool)
    full[tuple(slice(o, o + s) for o, s in zip(off, values.shape, strict=True))] = values > 0.5
    d = 2 * (full & truth).sum() / (full.sum() + truth.sum())
    assert d > 0.9


def test_normalize_hu_clips() -> None:
    spec = PatchSpec(hu_min=-1000, hu_max=0)
    np.testing.assert_allclose(normalize_hu([-2000, -500, 100], spec), [0.0, 0.5, 1.0])
