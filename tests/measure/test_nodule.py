"""measure_nodule on scenes with known truth (masks given, so only measurement is tested)."""

from __future__ import annotations

import numpy as np
import pytest
from segmentation.scenes import Scene, candidate_at, plane_sdf, sphere_sdf

from medsnowball.core import (
    ConfigError,
    CTVolume,
    ImageGeometry,
    LungSegmentation,
    NoduleSegmentation,
    NoduleType,
    Side,
    Zone,
)
from medsnowball.measure import measure_nodule

SPACING = (1.0, 0.7, 0.7)
SHAPE = (40, 57, 57)
C = (20.0, 20.0, 20.0)


def _seg(vol: CTVolume, mask: np.ndarray) -> NoduleSegmentation:
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    sub = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    return NoduleSegmentation(candidate_at(vol, C, 8.0), sub, (int(lo[0]), int(lo[1]), int(lo[2])))


def _sphere_volume(d: float) -> float:
    return float(np.pi / 6 * d**3)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("solid", NoduleType.SOLID), ("ground_glass", NoduleType.GROUND_GLASS),
     ("part_solid", NoduleType.PART_SOLID)],
)  # fmt: skip
def test_type_and_solid_component(kind: str, expected: NoduleType) -> None:
    sc = Scene(SHAPE, SPACING, seed=2)
    d = 10.0
    if kind == "solid":
        sc.add(sphere_sdf(C, d / 2), 30.0, "nodule", _sphere_volume(d))
    else:
        sc.add(sphere_sdf(C, d / 2), -600.0, "nodule", _sphere_volume(d))
    if kind == "part_solid":
        sc.add(sphere_sdf(C, 2.5), 30.0, "core", _sphere_volume(5.0))
    vol = sc.volume()
    truth = sc.truth("nodule")
    nod = measure_nodule(vol, _seg(vol, truth), None, nodule_id=3, score=0.7)
    assert nod.type == expected
    assert nod.id == 3
    assert nod.score == pytest.approx(0.7)
    assert nod.volume_mm3 == pytest.approx(truth.sum() * np.prod(SPACING))
    assert nod.equivalent_diameter_mm == pytest.approx(d, rel=0.03)
    assert nod.diameter_mm == pytest.approx(d, abs=0.7)
    assert nod.long_axis_mm >= nod.short_axis_mm
    if kind == "solid":
        assert nod.solid_component_mm == nod.diameter_mm
        assert nod.mean_hu > -150
    elif kind == "ground_glass":
        assert nod.solid_component_mm == 0.0
        assert -700 < nod.mean_hu < -450
    else:
        assert nod.solid_component_mm == pytest.approx(5.0, abs=1.2)
    assert not nod.calcified
    assert nod.side is None
    assert nod.zone is None


def test_calcified_nodule() -> None:
    sc = Scene(SHAPE, SPACING, seed=3).add(sphere_sdf(C, 3.0), 600.0, "nodule", _sphere_volume(6))
    vol = sc.volume()
    nod = measure_nodule(vol, _seg(vol, sc.truth("nodule")), None, nodule_id=1, score=0.5)
    assert nod.calcified
    assert nod.type == NoduleType.SOLID


def _wall_scene(gap_mm: float) -> Scene:
    sc = Scene(SHAPE, SPACING, seed=4)
    sc.add(sphere_sdf(C, 4.0), 30.0, "nodule", _sphere_volume(8))
    sc.add(plane_sdf(2, C[2] + 4.0 + gap_mm, True), 45.0, "wall")
    return sc


@pytest.mark.parametrize("with_lungs", [True, False])
def test_juxtapleural_flag(with_lungs: bool) -> None:
    for gap, expected in [(-1.0, True), (6.0, False)]:
        sc = _wall_scene(gap)
        vol = sc.volume()
        truth = sc.truth("nodule") & ~sc.truth("wall")
        lungs = sc.lungs() if with_lungs else None
        nod = measure_nodule(vol, _seg(vol, truth), lungs, nodule_id=1, score=0.5)
        assert nod.juxtapleural is expected, (gap, with_lungs)


def test_side_zone_and_world_centre_with_flipped_axes() -> None:
    sc = Scene(SHAPE, SPACING, seed=5).add(sphere_sdf(C, 4.0), 30.0, "nodule", _sphere_volume(8))
    arr = sc.render()
    # x and y index axes point to -x and -y in LPS; origin somewhere in the scanner
    direction = np.diag([-1.0, -1.0, 1.0])
    geom = ImageGeometry(SHAPE, SPACING, (100.0, 50.0, -30.0), direction)
    vol = CTVolume(arr, geom, source="scene")
    labels = np.zeros(SHAPE, np.uint8)
    # column index i >= 20 is at world x <= 100 - 20 * 0.7 = 86: patient right (smaller x)
    labels[:, :, 20:] = 1
    labels[:, :, :20] = 2
    lungs = LungSegmentation(labels, geom, 1.0, 1.0, zone_bounds_z=(-30.0 + 30.0, -30.0 + 10.0))
    truth = sc.truth("nodule")
    nod = measure_nodule(vol, _seg(vol, truth), lungs, nodule_id=1, score=0.5)
    centroid = np.argwhere(truth).mean(axis=0)
    expected = (
        100.0 - centroid[2] * SPACING[2],
        50.0 - centroid[1] * SPACING[1],
        -30.0 + centroid[0] * SPACING[0],
    )
    assert nod.center_lps == pytest.approx(expected, abs=1e-6)
    assert nod.side == Side.RIGHT  # centroid column ~28.6 >= 20
    # centre z = -30 + 20 = -10 lies between the boundaries -20 and 0: middle zone
    assert nod.zone == Zone.MIDDLE


def test_empty_or_misplaced_masks_are_refused() -> None:
    sc = Scene(SHAPE, SPACING, seed=6).add(sphere_sdf(C, 4.0), 30.0, "nodule")
    vol = sc.volume()
    cand = candidate_at(vol, C, 8.0)
    with pytest.raises(ConfigError, match="non-empty"):
        measure_nodule(
            vol, NoduleSegmentation(cand, np.zeros((2, 2, 2), bool), (0, 0, 0)), None,
            nodule_id=1, score=0.5,
        )  # fmt: skip
    with pytest.raises(ConfigError, match="does not fit"):
        measure_nodule(
            vol, NoduleSegmentation(cand, np.ones((2, 2, 2), bool), (39, 0, 0)), None,
            nodule_id=1, score=0.5,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("spacing", "tol"),
    [((2.5, 0.7, 0.7), 0.06), ((1.25, 0.6, 0.9), 0.02), ((0.625, 0.5, 0.5), 0.02)],
)
def test_ellipsoid_volume_and_axes_through_measure_nodule(
    spacing: tuple[float, float, float], tol: float
) -> None:
    from measure.test_axes import ellipsoid

    semi = (6.0, 3.5, 4.0)
    shape = (int(12 / spacing[0]) + 6, int(18 / spacing[1]) + 6, int(18 / spacing[2]) + 6)
    mask, _ = ellipsoid(semi, spacing, 0.4, (0.2, 0.3, 0.2), shape)
    hu = np.where(mask, 30.0, -850.0).astype(np.float32)
    vol = CTVolume(hu, ImageGeometry(shape, spacing, (0.0, 0.0, 0.0)))
    idx = np.argwhere(mask)
    lo = idx.min(0)
    sub = mask[tuple(slice(a, b + 1) for a, b in zip(lo, idx.max(0), strict=True))]
    cand = candidate_at(vol, tuple(np.asarray(shape) / 2 * np.asarray(spacing)), 10.0)
    nod = measure_nodule(
        vol, NoduleSegmentation(cand, sub, tuple(int(v) for v in lo)), None, nodule_id=1, score=1.0
    )
    analytic = 4.0 / 3.0 * np.pi * semi[0] * semi[1] * semi[2]
    assert nod.volume_mm3 == pytest.approx(analytic, rel=tol)
    assert nod.equivalent_diameter_mm == pytest.approx(
        2 * (semi[0] * semi[1] * semi[2]) ** (1 / 3), rel=tol
    )
    assert nod.long_axis_mm == pytest.approx(12.0, abs=max(spacing[1:]) + 0.1)
    assert nod.type == NoduleType.SOLID
