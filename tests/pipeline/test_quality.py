"""Quality flags of the pipeline: each flag's trigger, gathering into the result, status,
the Lung-RADS 0 of a case whose lungs were not evaluated."""

from __future__ import annotations

import numpy as np
import pytest

import medsnowball.segmentation as segmentation_pkg
from medsnowball.core import CTVolume, ImageGeometry
from medsnowball.core.findings import Candidate, LungSegmentation, NoduleSegmentation
from medsnowball.core.quality import QualityFlag
from medsnowball.detection.detect import FITTED_PIXEL_SPACING_MM, FITTED_SLICE_SPACING_MM
from medsnowball.pipeline import Pipeline
from medsnowball.pipeline.context import CaseContext
from medsnowball.pipeline.quality import (
    INCOMPLETE_EVALUATION_CODES,
    NO_LUNGS_MESSAGE,
    case_flags,
    incomplete_evaluation_reason,
    lung_flags,
    lungs_span_flags,
    voxel_size_flags,
)
from medsnowball.pipeline.steps import AssessConfig, AssessStep, SegmentConfig, SegmentStep
from medsnowball.report.fleischner import NO_NODULES_TEXT
from medsnowball.report.guidelines import INCOMPLETE_FLEISCHNER_TEXT
from medsnowball.report.lung_rads import LUNG_RADS_MANAGEMENT


def _volume(
    spacing: tuple[float, float, float], shape: tuple[int, int, int] = (8, 8, 8)
) -> CTVolume:
    return CTVolume(_ct_like(shape), ImageGeometry(shape, spacing, (0.0, 0.0, 0.0)))


def _ct_like(shape: tuple[int, int, int]) -> np.ndarray:
    """Air and soft tissue side by side: passes the HU plausibility check."""
    arr = np.full(shape, 40.0, dtype=np.float32)
    arr[..., : shape[2] // 2] = -1000.0
    return arr


def _lungs(
    right_ml: float,
    left_ml: float,
    *,
    z_slices: int = 30,
    dz: float = 2.0,
    quality: tuple[QualityFlag, ...] = (),
) -> LungSegmentation:
    shape = (40, 16, 16)
    labels = np.zeros(shape, dtype=np.uint8)
    if right_ml > 0:
        labels[:z_slices, 4:12, 2:7] = 1
    if left_ml > 0:
        labels[:z_slices, 4:12, 9:14] = 2
    geom = ImageGeometry(shape, (dz, 0.7, 0.7), (0.0, 0.0, 0.0))
    return LungSegmentation(labels, geom, right_ml, left_ml, quality=quality)


def _codes(flags: object) -> list[str]:
    return [f.code for f in flags]  # type: ignore[attr-defined]


# voxel size -------------------------------------------------------------------------
def test_voxel_size_inside_the_fitted_range_raises_nothing() -> None:
    lo, hi = FITTED_SLICE_SPACING_MM
    plo, phi = FITTED_PIXEL_SPACING_MM
    assert voxel_size_flags(_volume((1.25, 0.7, 0.7))) == []
    assert voxel_size_flags(_volume((hi, phi, plo))) == []  # bounds are inside
    assert voxel_size_flags(_volume((lo, plo, phi))) == []


@pytest.mark.parametrize(
    ("spacing", "shown"),
    [((3.0, 0.7, 0.7), "3.00 x 0.70 x 0.70"), ((1.0, 1.6, 1.6), "1.00 x 1.60 x 1.60"),
     ((1.0, 0.7, 0.4), "1.00 x 0.70 x 0.40"), ((0.5, 0.7, 0.7), "0.50 x 0.70 x 0.70")],
)  # fmt: skip
def test_voxel_size_outside_the_fitted_range_is_flagged(
    spacing: tuple[float, float, float], shown: str
) -> None:
    flags = voxel_size_flags(_volume(spacing))
    assert _codes(flags) == ["voxel_size_out_of_range"]
    assert flags[0].severity == "review"
    assert shown in flags[0].message
    assert "0.6-2.5 mm" in flags[0].message
    assert "0.5-1 mm" in flags[0].message


# lung height ----------------------------------------------------------------------------
def test_lungs_spanning_less_than_40_mm_are_flagged() -> None:
    flags = lungs_span_flags(_lungs(1000, 1000, z_slices=10, dz=2.0))  # 20 mm
    assert _codes(flags) == ["lungs_span_too_short"]
    assert "20 mm" in flags[0].message


def test_lungs_spanning_40_mm_or_more_are_not_flagged() -> None:
    assert lungs_span_flags(_lungs(1000, 1000, z_slices=20, dz=2.0)) == []  # exactly 40 mm
    assert lungs_span_flags(_lungs(0, 0)) == [], "no lungs: lung_volume_implausible says it"


# lung volumes ---------------------------------------------------------------------------
def test_plausible_lungs_raise_nothing() -> None:
    assert lung_flags(_lungs(2200, 1900)) == []
    assert lung_flags(_lungs(300, 300)) == []  # bounds are plausible
    assert lung_flags(_lungs(5000, 5000)) == []


def test_no_lungs_is_flagged_as_not_a_negative() -> None:
    flags = lung_flags(_lungs(0, 0))
    assert _codes(flags) == ["lung_volume_implausible"]
    assert flags[0].severity == "review"
    assert "No lungs were found" in flags[0].message
    assert "not a negative" in flags[0].message


def test_small_or_huge_lung_is_flagged_naming_the_side() -> None:
    small = lung_flags(_lungs(250, 260))
    assert _codes(small) == ["lung_volume_implausible"]
    assert "right lung 250 ml is below 300 ml" in small[0].message
    assert "left lung 260 ml is below 300 ml" in small[0].message
    huge = lung_flags(_lungs(2500, 5200))
    assert _codes(huge) == ["lung_volume_implausible"]
    assert "left lung 5200 ml is above 5000 ml" in huge[0].message
    assert "right lung" not in huge[0].message


def test_side_ratio_outside_range_is_flagged() -> None:
    low = lung_flags(_lungs(3000, 1000))  # left / right = 0.33
    assert _codes(low) == ["lung_side_ratio_implausible"]
    assert "0.33" in low[0].message
    high = lung_flags(_lungs(1000, 2600))  # 2.6
    assert _codes(high) == ["lung_side_ratio_implausible"]
    assert "2.60" in high[0].message


def test_side_ratio_inside_range_or_already_flagged_is_not_repeated() -> None:
    assert lung_flags(_lungs(2500, 1000)) == []  # 0.4
    assert lung_flags(_lungs(1000, 2500)) == []  # 2.5
    theirs = QualityFlag("lung_side_ratio_implausible", "from the lung segmentation")
    assert lung_flags(_lungs(3000, 1000, quality=(theirs,))) == []


# nodule cap ------------------------------------------------------------------------------
def _cands(n: int, score: float = 0.9) -> list[Candidate]:
    return [
        Candidate((float(i) * 10, 0.0, 0.0), (4.0, 4.0, float(i) * 4 + 2), score - i * 0.01, 5.0)
        for i in range(n)
    ]


@pytest.fixture
def fake_segmenter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1-voxel mask at each candidate: no duplicates, no real segmentation."""

    def segment(
        volume: CTVolume, cand: Candidate, lungs: object, **_: object
    ) -> NoduleSegmentation:
        z, y, x = (round(v) for v in cand.center_zyx)
        return NoduleSegmentation(cand, np.ones((1, 1, 1), dtype=bool), (z, y, x))

    monkeypatch.setattr(segmentation_pkg, "segment_nodule", segment)


def _segment_ctx(candidates: list[Candidate]) -> CaseContext:
    vol = _volume((1.0, 0.7, 0.7), shape=(8, 8, 64))
    lungs = LungSegmentation(np.ones(vol.shape, np.uint8), vol.geometry, 1000.0, 1000.0)
    return CaseContext("c", "s", volume=vol, lungs=lungs, candidates=candidates, threshold=0.5)


def test_nodule_cap_reached_is_flagged_with_counts(fake_segmenter: None) -> None:
    ctx = _segment_ctx(_cands(7) + _cands(2, score=0.3))  # 7 above the threshold
    SegmentStep(SegmentConfig(max_nodules=5)).run(ctx)
    assert len(ctx.segmentations) == 5
    assert _codes(ctx.quality) == ["nodule_cap_reached"]
    message = ctx.quality[0].message
    assert message.startswith("7 candidates scored at or above the operating threshold")
    assert "cap of 5 nodules" in message
    assert "only the 5 highest-scoring" in message
    assert any("More than 5 candidates above the threshold" in w for w in ctx.warnings)
    assert ctx.to_result().status == "needs_review"


def test_nodule_cap_not_reached_is_not_flagged(fake_segmenter: None) -> None:
    ctx = _segment_ctx(_cands(5) + _cands(3, score=0.3))
    SegmentStep(SegmentConfig(max_nodules=5)).run(ctx)
    assert len(ctx.segmentations) == 5
    assert ctx.quality == []
    assert ctx.warnings == []
    assert ctx.to_result().status == "ok"


# gathering and status --------------------------------------------------------------------
def test_to_result_merges_io_lung_and_step_flags_and_sets_the_status() -> None:
    io_flag = QualityFlag("input_reoriented", "reoriented", "info")
    lung_flag = QualityFlag("lungs_touch_fov_edge", "lungs touch the edge")
    step_flag = QualityFlag("nodule_cap_reached", "cap")
    vol = CTVolume(_ct_like((4, 4, 4)), ImageGeometry((4, 4, 4), (1, 1, 1), (0, 0, 0)),
                   quality=(io_flag,))  # fmt: skip
    lungs = LungSegmentation(np.zeros((4, 4, 4), np.uint8), vol.geometry, 0.0, 0.0,
                             quality=(lung_flag,))  # fmt: skip
    ctx = CaseContext("c", "s", volume=vol, lungs=lungs)
    ctx.quality += [step_flag, step_flag]
    result = ctx.to_result()
    assert result.quality == (io_flag, lung_flag, step_flag)
    assert result.status == "needs_review"

    info_only = CaseContext("c", "s", volume=vol)
    assert info_only.to_result().quality == (io_flag,)
    assert info_only.to_result().status == "ok", "an info flag leaves the case ok"
    assert CaseContext("c", "s").to_result().status == "ok"


def test_incomplete_reason_from_missing_lungs_or_review_flags_of_lung_coverage() -> None:
    assert {
        "lungs_cut_at_scan_range",
        "lungs_touch_fov_edge",
        "hu_range_implausible",
    } == INCOMPLETE_EVALUATION_CODES
    cut = QualityFlag("lungs_cut_at_scan_range", "Cut at the first slice.")
    assert incomplete_evaluation_reason([cut]) == "Cut at the first slice."
    assert incomplete_evaluation_reason([cut], _lungs(0, 0)) == (
        NO_LUNGS_MESSAGE + " Cut at the first slice."
    )
    assert incomplete_evaluation_reason([], _lungs(0, 0)) == NO_LUNGS_MESSAGE
    assert incomplete_evaluation_reason([], _lungs(2000, 1800)) is None
    assert incomplete_evaluation_reason([], None) is None, "no lungs step: nothing to say"
    small = lung_flags(_lungs(200, 200))
    assert incomplete_evaluation_reason(small, _lungs(200, 200)) is None
    assert incomplete_evaluation_reason([QualityFlag("nodule_cap_reached", "cap")]) is None
    info = QualityFlag("lungs_touch_fov_edge", "touches", "info")
    assert incomplete_evaluation_reason([info]) is None


# assessment ------------------------------------------------------------------------------
def _assess_ctx(lungs: LungSegmentation) -> CaseContext:
    ctx = CaseContext("c", "s", volume=_volume((1.0, 0.7, 0.7)), lungs=lungs)
    ctx.quality.extend(lung_flags(lungs))
    return ctx


def test_assess_without_lungs_is_lung_rads_0_not_a_negative() -> None:
    ctx = _assess_ctx(_lungs(0, 0))
    AssessStep(AssessConfig()).run(ctx)
    a = ctx.assessment
    assert a is not None
    assert a.lung_rads == "0"
    assert a.lung_rads_management == LUNG_RADS_MANAGEMENT["0"]
    assert a.fleischner == INCOMPLETE_FLEISCHNER_TEXT != NO_NODULES_TEXT
    assert any("Lung-RADS 0 (incomplete)" in n and "No lungs were found" in n for n in a.notes)
    assert not any("Lung-RADS 1" in n for n in a.notes)


@pytest.mark.parametrize(("right", "left"), [(2000.0, 1800.0), (200.0, 200.0)])
def test_assess_with_lungs_in_view_and_no_nodules_is_lung_rads_1(right: float, left: float) -> None:
    ctx = _assess_ctx(_lungs(right, left))  # small lungs need review, but were evaluated
    AssessStep(AssessConfig()).run(ctx)
    assert ctx.assessment is not None
    assert ctx.assessment.lung_rads == "1"
    assert ctx.assessment.fleischner == NO_NODULES_TEXT


def test_assess_with_lungs_cut_by_the_scan_range_is_lung_rads_0() -> None:
    cut = QualityFlag("lungs_cut_at_scan_range", "The scan range cuts the right lung's apex.")
    ctx = _assess_ctx(_lungs(2000, 1800, quality=(cut,)))
    AssessStep(AssessConfig()).run(ctx)
    assert ctx.assessment is not None
    assert ctx.assessment.lung_rads == "0"
    assert any("cuts the right lung's apex" in n for n in ctx.assessment.notes)


# the real pipeline on a volume without lungs ----------------------------------------------
@pytest.mark.parametrize("hu", [40.0, -1000.0], ids=["soft_tissue", "air"])
def test_volume_without_lungs_needs_review_through_the_classical_pipeline(hu: float) -> None:
    rng = np.random.default_rng(0)
    arr = (hu + rng.normal(0, 5, size=(24, 48, 48))).astype(np.float32)
    vol = CTVolume(arr, ImageGeometry((24, 48, 48), (2.0, 0.8, 0.8), (0.0, 0.0, 0.0)))
    result = Pipeline.from_yaml("lung_nodule_classical").run(vol, device="cpu")
    assert result.status == "needs_review"
    # Neither volume holds both air and tissue: impossible for a chest CT as well.
    assert _codes(result.quality) == ["hu_range_implausible", "lung_volume_implausible"]
    assert result.nodules == ()
    assert result.assessment is not None
    assert result.assessment.lung_rads == "0"
    assert result.assessment.fleischner == INCOMPLETE_FLEISCHNER_TEXT
    assert case_flags(CaseContext("c", "s")) == ()
