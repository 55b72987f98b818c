"""segment_nodule on hand-made scenes (sphere, vessel, wall, ground glass) and a phantom."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core import Candidate, ConfigError, LungSegmentation
from medsnowball.segmentation import segment_nodule, segment_nodule_detailed

from .scenes import Scene, candidate_at, cylinder_sdf, dice, paste, plane_sdf, sphere_sdf

C = (20.0, 20.0, 20.0)


def _vol_sphere(d: float) -> float:
    return float(np.pi / 6 * d**3)


def _shape(spacing: tuple[float, float, float]) -> tuple[int, int, int]:
    return (
        round(40 / spacing[0]),
        round(40 / spacing[1]),
        round(40 / spacing[2]),
    )


def _run(sc: Scene, d: float, lungs: LungSegmentation | None = None) -> tuple[np.ndarray, str]:
    vol = sc.volume()
    seg, det = segment_nodule_detailed(vol, candidate_at(vol, C, d), lungs)
    assert seg.mask.any()
    return paste(vol.shape, seg.mask, seg.offset_zyx), det.kind


@pytest.mark.parametrize("spacing", [(0.7, 0.7, 0.7), (2.5, 0.7, 0.7), (1.25, 0.6, 0.6)])
@pytest.mark.parametrize("d", [6.0, 12.0])
def test_solid_sphere(spacing: tuple[float, float, float], d: float) -> None:
    sc = Scene(_shape(spacing), spacing, seed=1).add(
        sphere_sdf(C, d / 2), 30, "nodule", _vol_sphere(d)
    )
    mask, kind = _run(sc, d)
    truth = sc.truth("nodule")
    assert kind == "solid"
    assert dice(mask, truth) >= 0.85
    assert mask.sum() == pytest.approx(truth.sum(), rel=0.2)


@pytest.mark.parametrize("spacing", [(0.7, 0.7, 0.7), (2.0, 0.7, 0.7)])
def test_juxtavascular_nodule_is_cut_from_its_vessel(spacing: tuple[float, float, float]) -> None:
    d = 8.0
    sc = Scene(_shape(spacing), spacing, seed=2)
    sc.add(sphere_sdf(C, d / 2), 30, "nodule", _vol_sphere(d))
    # a 2.4 mm vessel running past the nodule, touching it, through the whole scene
    sc.add(cylinder_sdf((C[0], C[1] + d / 2 + 0.9, C[2]), (0.3, 0.0, 1.0), 1.2), 40, "vessel")
    mask, _ = _run(sc, d)
    truth = sc.truth("nodule")
    vessel = sc.truth("vessel") & ~truth
    assert dice(mask, truth) >= 0.8
    # no leak along the vessel: little of the mask lies in it, nothing far from the nodule
    assert np.count_nonzero(mask & vessel) < 0.1 * truth.sum()
    far = np.argwhere(mask) * np.asarray(spacing) - np.asarray(C)
    assert np.linalg.norm(far, axis=1).max() < d / 2 + 3.0


@pytest.mark.parametrize("with_lungs", [True, False])
def test_juxtapleural_nodule_does_not_leak_into_the_wall(with_lungs: bool) -> None:
    d = 9.0
    spacing = (1.25, 0.7, 0.7)
    sc = Scene(_shape(spacing), spacing, seed=3)
    sc.add(sphere_sdf(C, d / 2), 30, "nodule")
    sc.add(plane_sdf(2, C[2] + 0.3 * d, True), 45, "wall")  # wall cuts 20 % of the sphere
    wall = sc.truth("wall")
    truth = sc.truth("nodule") & ~wall
    mask, _ = _run(sc, d, sc.lungs() if with_lungs else None)
    assert np.count_nonzero(mask & wall) <= 0.05 * truth.sum()
    assert dice(mask, truth) >= 0.8


@pytest.mark.parametrize("spacing", [(0.7, 0.7, 0.7), (2.5, 0.7, 0.7)])
def test_ground_glass_nodule(spacing: tuple[float, float, float]) -> None:
    d = 10.0
    sc = Scene(_shape(spacing), spacing, seed=4)
    sc.add(sphere_sdf(C, d / 2), -600, "nodule", _vol_sphere(d))
    mask, kind = _run(sc, d)
    assert kind == "ground_glass"
    assert dice(mask, sc.truth("nodule")) >= 0.8


def test_part_solid_nodule_includes_its_ground_glass() -> None:
    d = 12.0
    spacing = (1.0, 0.7, 0.7)
    sc = Scene(_shape(spacing), spacing, seed=5)
    sc.add(sphere_sdf(C, d / 2), -580, "nodule", _vol_sphere(d))
    sc.add(sphere_sdf(C, 3.0), 30, "core", _vol_sphere(6.0))
    mask, kind = _run(sc, d)
    truth = sc.truth("nodule")
    assert kind == "subsolid"
    assert dice(mask, truth) >= 0.8
    # a solid-only segmentation would hold about (6/12)^3 = 1/8 of the volume
    assert mask.sum() > 0.7 * truth.sum()


def test_off_centre_candidate_and_small_size_estimate() -> None:
    d = 10.0
    spacing = (1.0, 0.7, 0.7)
    sc = Scene(_shape(spacing), spacing, seed=6).add(
        sphere_sdf(C, d / 2), 30, "nodule", _vol_sphere(d)
    )
    vol = sc.volume()
    cand = candidate_at(vol, (C[0] + 1.5, C[1] - 1.5, C[2]), 5.0)
    seg = segment_nodule(vol, cand)
    assert dice(paste(vol.shape, seg.mask, seg.offset_zyx), sc.truth("nodule")) >= 0.85


def test_candidate_on_empty_parenchyma_falls_back_to_its_sphere() -> None:
    spacing = (1.0, 1.0, 1.0)
    sc = Scene(_shape(spacing), spacing, seed=7)
    vol = sc.volume()
    seg, det = segment_nodule_detailed(vol, candidate_at(vol, C, 6.0))
    assert det.kind == "fallback"
    assert seg.mask.sum() * 1.0 == pytest.approx(_vol_sphere(6.0), rel=0.25)


def test_bad_inputs_are_refused() -> None:
    spacing = (1.0, 1.0, 1.0)
    vol = Scene((20, 20, 20), spacing, seed=8).volume()
    outside = Candidate((0.0, 0.0, 0.0), (50.0, 5.0, 5.0), 0.5, 6.0)
    with pytest.raises(ConfigError, match="outside"):
        segment_nodule(vol, outside)
    inside = Candidate((0.0, 0.0, 0.0), (10.0, 10.0, 10.0), 0.5, 6.0)
    lungs = LungSegmentation(np.ones((5, 5, 5), np.uint8), vol.geometry, 1.0, 1.0)
    with pytest.raises(ConfigError, match="Lung labels"):
        segment_nodule(vol, inside, lungs)
    with pytest.raises(ConfigError, match="max_diameter_mm"):
        segment_nodule(vol, inside, max_diameter_mm=0.0)
