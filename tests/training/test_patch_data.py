"""Patch sampling on a phantom with known nodules."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.models.config import PatchSpec
from medsnowball.training.patch_data import (
    TrainingCase,
    classifier_patches,
    negative_centers,
    segmentation_patches,
)


@pytest.fixture(scope="module")
def case() -> TrainingCase:
    from medsnowball import synth

    ph = synth.generate_phantom(
        synth.PhantomConfig(
            shape_zyx=(48, 80, 80),
            spacing_zyx=(2.0, 1.8, 1.8),
            seed=21,
            nodules=(
                synth.NoduleSpec(9.0, "solid", "parenchymal"),
                synth.NoduleSpec(7.0, "solid", "juxtapleural"),
            ),
        )
    )
    nods = ph.truth.nodules
    boxes = np.array([[*n.center_lps, n.diameter_mm, n.diameter_mm, n.diameter_mm] for n in nods])
    return TrainingCase(
        volume=ph.volume,
        boxes=boxes,
        seg=np.asarray(ph.nodule_labels),
        seg_labels=tuple(n.id for n in nods),
        lung=np.asarray(ph.lung_labels) > 0,
        case_id="t",
    )


def test_negatives_avoid_nodules_and_stay_in_lung(case: TrainingCase) -> None:
    rng = np.random.default_rng(0)
    neg = negative_centers(case, 60, rng)
    assert len(neg) == 60
    idx = np.rint(neg).astype(int)
    assert case.lung is not None
    assert case.lung[tuple(idx.T)].all()
    sp = np.asarray(case.volume.spacing_zyx)
    for c, d in zip(case.centers_zyx, case.diameters_mm, strict=True):
        dist = np.sqrt((((neg - c) * sp) ** 2).sum(axis=1))
        assert dist.min() > d / 2 + 3.0
    # about half are dense (vessel) points
    hu = np.asarray(case.volume.array)[tuple(idx.T)]
    assert (hu > -500).sum() >= 20


def test_detector_candidates_are_preferred_negatives(case: TrainingCase) -> None:
    import dataclasses

    far = case.volume.index_to_world([[10, 20, 20], [30, 40, 25]])
    near = case.boxes[:1, :3]
    with_cands = dataclasses.replace(case, candidates_lps=np.vstack([far, near]))
    neg = negative_centers(with_cands, 2, np.random.default_rng(0))
    np.testing.assert_allclose(sorted(neg[:, 0]), [10, 30], atol=1e-6)


def test_classifier_patches_have_nodules_at_the_centre(case: TrainingCase) -> None:
    spec = PatchSpec((16, 16, 16), (1.5, 1.5, 1.5))
    x, y, ci = classifier_patches([case], spec, negatives_per_case=20, positive_copies=3, seed=0)
    assert x.shape == (26, 16, 16, 16)
    assert x.dtype == np.float16
    assert int(y.sum()) == 6
    assert (ci == 0).all()
    centre = x[:, 6:10, 6:10, 6:10].astype(np.float32).mean(axis=(1, 2, 3))
    # exact nodule centres (copies 0 and 3) hold solid tissue; jittered ones mostly
    assert centre[[0, 3]].min() > 0.5
    assert np.median(centre[y == 1]) > np.median(centre[y == 0]) + 0.2


def test_segmentation_patches_hold_only_the_central_nodule(case: TrainingCase) -> None:
    spec = PatchSpec((24, 24, 24), (1.0, 1.0, 1.0))
    x, m = segmentation_patches([case], spec, copies=1, seed=0)
    assert x.shape == m.shape == (2, 24, 24, 24)
    for mask, d in zip(m, case.diameters_mm, strict=True):
        assert mask[12, 12, 12] == 1 or mask[11:13, 11:13, 11:13].any()
        vol = mask.sum()  # 1 mm voxels
        assert vol == pytest.approx(np.pi / 6 * d**3, rel=0.35)
