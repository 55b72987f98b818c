"""Hard negatives and detector hits from scored candidates (the shipped recipe's sampling)."""

from __future__ import annotations

import dataclasses

import numpy as np

from medsnowball.core import CTVolume, ImageGeometry
from medsnowball.models.config import PatchSpec
from medsnowball.training.patch_data import (
    TrainingCase,
    candidate_hits,
    classifier_patches,
    hard_negative_centers,
)


def _case() -> TrainingCase:
    arr = np.full((20, 40, 40), -800.0, dtype=np.float32)
    arr[8:13, 18:23, 18:23] = 40.0  # a 5-voxel (5 mm) nodule at index (10, 20, 20)
    vol = CTVolume(arr, ImageGeometry((20, 40, 40), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    centre = vol.index_to_world((10.0, 20.0, 20.0))
    cands_zyx = np.array(
        [
            [10.0, 20.0, 21.0],  # hit (1 mm off)
            [10.0, 20.0, 24.0],  # 4 mm off: outside the radius but within radius + 3 mm
            [10.0, 5.0, 5.0],  # far FP, low score
            [4.0, 30.0, 30.0],  # far FP, high score
            [15.0, 32.0, 8.0],  # far FP, middle score
        ]
    )
    return TrainingCase(
        volume=vol,
        boxes=np.array([[*centre, 5.0, 5.0, 5.0]]),
        lung=np.ones(arr.shape, bool),
        candidates_lps=np.atleast_2d(vol.index_to_world(cands_zyx)),
        candidate_scores=np.array([0.9, 0.5, 0.1, 0.8, 0.3]),
    )


def test_candidate_hits_use_the_luna16_radius() -> None:
    assert candidate_hits(_case()).tolist() == [True, False, False, False, False]


def test_hard_negatives_are_the_highest_scoring_far_candidates() -> None:
    case = _case()
    neg = hard_negative_centers(case, 2)
    np.testing.assert_allclose(neg, [[4.0, 30.0, 30.0], [15.0, 32.0, 8.0]], atol=1e-6)
    assert len(hard_negative_centers(case, 10)) == 3  # hit and ambiguous one left out
    unscored = dataclasses.replace(case, candidate_scores=None)
    np.testing.assert_allclose(hard_negative_centers(unscored, 1), [[10.0, 5.0, 5.0]], atol=1e-6)


def test_classifier_patches_with_hard_negatives_and_candidate_positives() -> None:
    spec = PatchSpec(size_zyx=(8, 8, 8), spacing_zyx=(1.0, 1.0, 1.0))
    x, y, _ = classifier_patches(
        [_case()],
        spec,
        positive_copies=2,
        hard_negatives=2,
        random_negatives=3,
        candidate_positives=True,
    )
    # positives: centre + 1 jittered copy + the detector hit; negatives: 2 hard + 3 random
    assert y.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert x.shape == (8, 8, 8, 8)
    # the hit patch is centred 1 mm from the bright nodule: its centre is bright
    assert float(x[2, 4, 4, 4]) > 0.5
