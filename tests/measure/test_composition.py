"""Attenuation type with the partial-volume rim rule, at coarse and fine spacing.

Full chain: candidate at the true centre -> ``segment_nodule`` -> ``measure_nodule``.
Coarse spacing (2.5 x 1.75 x 1.75 mm) uses the synthetic chest phantom (the demo's
failure: small solid nodules came out part-solid); fine spacing uses analytic scenes
(the chest phantom has no room for parenchymal nodules in a small fine-spacing FOV).
"""

from __future__ import annotations

import pytest
from segmentation.scenes import Scene, candidate_at, sphere_sdf

from medsnowball.core import Candidate, LungSegmentation, NoduleType
from medsnowball.measure import measure_nodule
from medsnowball.measure.composition import (
    PV_BLUR_MM,
    expected_core_fraction,
    partial_volume_rim_mm,
)
from medsnowball.segmentation import segment_nodule
from medsnowball.synth import NoduleSpec, PhantomConfig, generate_phantom

COARSE_SHAPE = (80, 128, 128)
COARSE_SPACING = (2.5, 1.75, 1.75)

TYPES = {
    "solid": NoduleType.SOLID,
    "part_solid": NoduleType.PART_SOLID,
    "ground_glass": NoduleType.GROUND_GLASS,
}


def _synth_type(spec: NoduleSpec, seed: int) -> tuple[NoduleType, float, float]:
    """Type, diameter and solid component measured on a coarse synthetic phantom."""
    phantom = None
    for k in range(8):
        cfg = PhantomConfig(COARSE_SHAPE, COARSE_SPACING, seed=seed + 1000 * k, nodules=(spec,))
        phantom = generate_phantom(cfg)
        if phantom.truth.nodules:
            break
    assert phantom is not None
    assert phantom.truth.nodules, "phantom generator placed no nodule"
    truth = phantom.truth.nodules[0]
    lungs = LungSegmentation(
        labels=phantom.lung_labels, geometry=phantom.volume.geometry, right_ml=1.0, left_ml=1.0
    )
    cand = Candidate(
        center_lps=truth.center_lps,
        center_zyx=truth.center_zyx,
        score=1.0,
        diameter_mm=spec.diameter_mm,
    )
    seg = segment_nodule(phantom.volume, cand, lungs)
    nod = measure_nodule(phantom.volume, seg, lungs, nodule_id=1, score=1.0)
    return nod.type, nod.diameter_mm, nod.solid_component_mm


@pytest.mark.parametrize(
    ("spec", "seed"),
    [
        (NoduleSpec(9.0, "solid", "parenchymal"), 0),
        (NoduleSpec(7.0, "solid", "juxtapleural"), 1),
        (NoduleSpec(6.0, "solid", "parenchymal"), 2),
        (NoduleSpec(14.0, "part_solid", "parenchymal", solid_diameter_mm=6.0), 4),
        (NoduleSpec(12.0, "part_solid", "parenchymal", solid_diameter_mm=8.0), 7),
        (NoduleSpec(10.0, "ground_glass", "parenchymal"), 9),
    ],
    ids=["solid9", "solid7_juxtapleural", "solid6", "ps14_6", "ps12_8", "ggn10"],
)
def test_type_at_coarse_spacing(spec: NoduleSpec, seed: int) -> None:
    kind, diameter, solid = _synth_type(spec, seed)
    assert kind == TYPES[spec.type]
    if kind == NoduleType.SOLID:
        assert solid == diameter
    elif kind == NoduleType.PART_SOLID:
        assert spec.solid_diameter_mm is not None
        assert 0.0 < solid < diameter
        assert solid == pytest.approx(spec.solid_diameter_mm, abs=3.0)


def _scene_type(
    spacing: tuple[float, float, float], kind: str, diameter: float, core: float = 0.0
) -> NoduleType:
    shape = tuple(round(32.0 / s) for s in spacing)
    shape_zyx = (shape[0], shape[1], shape[2])
    c = tuple(0.5 * n * s for n, s in zip(shape_zyx, spacing, strict=True))
    center = (c[0], c[1], c[2])
    sc = Scene(shape_zyx, spacing, seed=5)
    sc.add(sphere_sdf(center, diameter / 2), 30.0 if kind == "solid" else -600.0, "nodule")
    if core > 0:
        sc.add(sphere_sdf(center, core / 2), 30.0, "core")
    vol = sc.volume()
    seg = segment_nodule(vol, candidate_at(vol, center, diameter), None)
    return measure_nodule(vol, seg, None, nodule_id=1, score=1.0).type


@pytest.mark.parametrize("spacing", [(1.25, 0.7, 0.7), (0.625, 0.7, 0.7), (1.0, 0.8, 0.8)])
@pytest.mark.parametrize(
    ("kind", "diameter", "core"),
    [
        ("solid", 6.0, 0.0),
        ("solid", 9.0, 0.0),
        ("part_solid", 14.0, 6.0),
        ("part_solid", 12.0, 8.0),
        ("ground_glass", 10.0, 0.0),
    ],
)
def test_type_at_fine_spacing(
    spacing: tuple[float, float, float], kind: str, diameter: float, core: float
) -> None:
    assert _scene_type(spacing, kind, diameter, core) == TYPES[kind]


def test_partial_volume_rim_follows_spacing() -> None:
    rim_xy, rim_z = partial_volume_rim_mm((2.5, 1.75, 1.75))
    assert rim_xy == pytest.approx(1.75)
    assert rim_z == pytest.approx(2.5)
    # never thinner than the blur
    fine_xy, fine_z = partial_volume_rim_mm((0.5, 0.4, 0.4))
    assert fine_xy == pytest.approx(PV_BLUR_MM)
    assert fine_z == pytest.approx(PV_BLUR_MM)
    # anisotropic in-plane spacing: mean of y and x
    assert partial_volume_rim_mm((1.0, 0.6, 1.0))[0] == pytest.approx(0.8)


def test_expected_core_fraction() -> None:
    # 10 mm nodule, 1 mm rim in plane, 2 mm through plane: 0.8^2 x 0.6
    assert expected_core_fraction(10.0, 1.0, 2.0) == pytest.approx(0.8**2 * 0.6)
    assert expected_core_fraction(3.0, 2.0, 2.0) == 0.0
    assert expected_core_fraction(0.0, 1.0, 1.0) == 0.0
