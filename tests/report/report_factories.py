"""Builders of synthetic report inputs: nodules and a small chest phantom with spheres.

The phantom (40 x 96 x 96 voxels, 2.5 x 0.8 x 0.8 mm) has a soft-tissue body, two
air-filled lungs (right lung at small x = patient right, label 1; left lung label 2) and
nodules drawn as spheres whose instance labels equal their ``Nodule.id``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from medsnowball.core import (
    AcquisitionInfo,
    CaseResult,
    CTVolume,
    ImageGeometry,
    Nodule,
    NoduleType,
    PatientInfo,
    Side,
    Zone,
)
from medsnowball.report.guidelines import assess

SOLID, PART, GGN = NoduleType.SOLID, NoduleType.PART_SOLID, NoduleType.GROUND_GLASS

SHAPE_ZYX = (40, 96, 96)
SPACING_ZYX = (2.5, 0.8, 0.8)
ORIGIN_LPS = (-38.0, -40.0, -150.0)


@dataclasses.dataclass(frozen=True)
class SphereSpec:
    """A nodule to draw: id, centre index (z, y, x), diameter, type, side."""

    id: int
    center_zyx: tuple[float, float, float]
    diameter_mm: float
    type: NoduleType = NoduleType.SOLID
    side: Side = Side.RIGHT
    zone: Zone = Zone.MIDDLE
    juxtapleural: bool = False


DEFAULT_SPHERES: tuple[SphereSpec, ...] = (
    SphereSpec(1, (20.0, 48.0, 28.0), 9.0),  # solid 9 mm, right lung -> 4A
    SphereSpec(2, (12.0, 44.0, 68.0), 6.5, NoduleType.GROUND_GLASS, Side.LEFT, Zone.LOWER),
)


def _sphere(geometry: ImageGeometry, center_zyx: Sequence[float], diameter_mm: float) -> np.ndarray:
    zz, yy, xx = np.ogrid[: geometry.shape_zyx[0], : geometry.shape_zyx[1], : geometry.shape_zyx[2]]
    sz, sy, sx = geometry.spacing_zyx
    cz, cy, cx = center_zyx
    d2 = ((zz - cz) * sz) ** 2 + ((yy - cy) * sy) ** 2 + ((xx - cx) * sx) ** 2
    return d2 <= (diameter_mm / 2.0) ** 2


def make_case(
    spheres: Sequence[SphereSpec] = DEFAULT_SPHERES,
    *,
    case_id: str = "case_0001",
    patient: PatientInfo | None = None,
    with_labels: bool = True,
) -> tuple[CaseResult, CTVolume]:
    """Build a phantom CT and the CaseResult a pipeline would produce for it."""
    geometry = ImageGeometry(SHAPE_ZYX, SPACING_ZYX, ORIGIN_LPS)
    nz, ny, nx = SHAPE_ZYX
    zz, yy, xx = np.ogrid[:nz, :ny, :nx]
    hu = np.full(SHAPE_ZYX, -1000, dtype=np.int16)
    body = ((yy - 48) / 44.0) ** 2 + ((xx - 48) / 46.0) ** 2 <= 1.0
    hu[np.broadcast_to(body, SHAPE_ZYX)] = 40
    lungs = np.zeros(SHAPE_ZYX, dtype=np.uint8)
    for label, cx in ((1, 28), (2, 68)):
        ell = ((zz - 20) / 17.0) ** 2 + ((yy - 46) / 30.0) ** 2 + ((xx - cx) / 15.0) ** 2 <= 1.0
        lungs[ell] = label
    hu[lungs > 0] = -850
    nodule_labels = np.zeros(SHAPE_ZYX, dtype=np.uint16)
    nodules = []
    for spec in spheres:
        mask = _sphere(geometry, spec.center_zyx, spec.diameter_mm)
        value = 30 if spec.type is NoduleType.SOLID else -550
        hu[mask] = value
        nodule_labels[mask] = spec.id
        volume_mm3 = float(mask.sum()) * geometry.voxel_volume_mm3
        center = tuple(float(v) for v in geometry.index_to_world(spec.center_zyx))
        solid = {
            NoduleType.SOLID: spec.diameter_mm,
            NoduleType.PART_SOLID: spec.diameter_mm / 2,
            NoduleType.GROUND_GLASS: 0.0,
        }[spec.type]
        nodules.append(
            Nodule(
                id=spec.id,
                center_lps=center,  # type: ignore[arg-type]
                score=0.9 - 0.1 * spec.id,
                diameter_mm=spec.diameter_mm,
                long_axis_mm=spec.diameter_mm + 0.4,
                short_axis_mm=spec.diameter_mm - 0.4,
                volume_mm3=volume_mm3,
                equivalent_diameter_mm=float((6 * volume_mm3 / np.pi) ** (1 / 3)),
                type=spec.type,
                solid_component_mm=solid,
                mean_hu=float(value),
                side=spec.side,
                zone=spec.zone,
                juxtapleural=spec.juxtapleural,
            )
        )
    volume = CTVolume(
        hu,
        geometry,
        source="phantom",
        acquisition=AcquisitionInfo(manufacturer="Phantom Co", kernel="B30f", kvp=120.0),
        patient=patient or PatientInfo(),
    )
    assessment, assessed = assess(nodules)
    result = CaseResult(
        case_id=case_id,
        source="phantom",
        pipeline="test_pipeline",
        geometry=geometry,
        lungs_ml={
            "right": float((lungs == 1).sum()) * geometry.voxel_volume_mm3 / 1000.0,
            "left": float((lungs == 2).sum()) * geometry.voxel_volume_mm3 / 1000.0,
        },
        nodules=assessed,
        assessment=assessment,
        timings_s={"detect": 1.25, "load": 0.5},
        lung_labels=lungs if with_labels else None,
        nodule_labels=nodule_labels if with_labels else None,
    )
    return result, volume


def make_nodule(
    diameter: float,
    kind: NoduleType = NoduleType.SOLID,
    solid: float | None = None,
    *,
    id: int = 1,
    juxtapleural: bool = False,
    calcified: bool = False,
) -> Nodule:
    """A nodule with the given mean diameter (and solid component, default by type)."""
    if solid is None:
        solid = {SOLID: diameter, PART: diameter / 2, GGN: 0.0}[kind]
    return Nodule(
        id=id,
        center_lps=(0.0, 0.0, 0.0),
        score=0.9,
        diameter_mm=diameter,
        long_axis_mm=diameter,
        short_axis_mm=diameter,
        volume_mm3=float(np.pi / 6 * diameter**3) if np.isfinite(diameter) else diameter,
        equivalent_diameter_mm=diameter,
        type=kind,
        solid_component_mm=solid,
        mean_hu=0.0,
        juxtapleural=juxtapleural,
        calcified=calcified,
    )
