"""Lung segmentation on real scanner files in ../shared/data/real (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core import Zone
from medsnowball.io import load_ct
from medsnowball.lung import locate, segment_lungs

#: Right / left lung pixel counts of lungmask's published test over the two slices.
LUNGMASK_RIGHT_PX = 64_752
LUNGMASK_LEFT_PX = 36_536


def test_chest_two_slices_match_lungmask_counts(shared_data):
    vol = load_ct(shared_data / "real" / "chest_2slices_stripped")
    seg = segment_lungs(vol)
    right = int(np.count_nonzero(seg.labels == 1))
    left = int(np.count_nonzero(seg.labels == 2))
    assert right == pytest.approx(LUNGMASK_RIGHT_PX, rel=0.10)
    assert left == pytest.approx(LUNGMASK_LEFT_PX, rel=0.10)
    # Both slices hold both lungs; the right lung is at smaller LPS x (image left).
    for k in range(2):
        assert (seg.labels[k] == 1).any()
        assert (seg.labels[k] == 2).any()
    xr = np.nonzero(seg.labels == 1)[2].mean()
    xl = np.nonzero(seg.labels == 2)[2].mean()
    assert xr < xl
    # Vessels inside the lungs are filled: lung voxels above -400 HU exist inside the mask.
    assert np.count_nonzero(seg.mask & (vol.array > -400)) > 500


def test_abdomen_finds_lung_bases_only_at_the_top(shared_data):
    vol = load_ct(shared_data / "real" / "abdomen_lung_bases.nii.gz")
    seg = segment_lungs(vol)
    assert seg.right_ml > 20
    assert seg.left_ml > 20
    per_slice = seg.mask.reshape(seg.mask.shape[0], -1).sum(axis=1)
    z = vol.geometry.index_to_world(
        np.stack([np.arange(vol.shape[0]), np.zeros(vol.shape[0]), np.zeros(vol.shape[0])], 1)
    )[:, 2]
    top = np.argsort(-z)[:15]  # the 15 most cranial slices (45 mm)
    assert per_slice[top].sum() == per_slice.sum()  # no bowel gas taken for lung
    assert per_slice[np.argmax(z)] > 0  # the lung bases reach the top slice
    # A lung voxel is located in its lung and in some zone.
    zz, yy, xx = np.argwhere(seg.labels == 1)[0]
    side, zone = locate(seg, vol.geometry.index_to_world([zz, yy, xx]))
    assert side is not None
    assert zone in set(Zone)
