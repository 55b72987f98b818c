"""Attenuation type (solid / part-solid / ground-glass), solid component and calcification.

Rules (documented in ``docs/cad.md``; thresholds are module constants):

* **Solid voxels** are mask voxels whose lightly smoothed HU (Gaussian, sigma 0.5 voxel, to
  tame noise) exceed :data:`SOLID_HU` = -300 HU. Ground glass lies at about -750..-350 HU,
  soft tissue at -100..+100 HU, so -300 HU splits the two and sits near the 50 % partial-
  volume level between typical ground glass (-600) and solid tissue (0).
* The **solid component** is the largest connected set of solid voxels (26-connectivity)
  after removing specks thinner than about one voxel (binary opening with a 3x3 in-plane
  cross). Its size is its Lung-RADS mean diameter, measured exactly like the whole nodule
  (long and short axis on its axial slice of largest area).
* **Partial-volume rim.** Even a uniformly solid nodule has an edge, about
  :data:`PV_RIM_VOXELS` (1) voxel wide on each side, whose voxels are partial volumes of
  nodule and lung (plus the scanner blur, sigma about 0.7 mm): they fall between the mask
  threshold and :data:`SOLID_HU`, so they are in the mask but not solid. At 0.7 mm pixels
  this rim is small, but at 1.75 mm pixels it takes ~3.5 mm off the diameter of a solid
  nodule's "solid component" and most of the volume of a small one. The rule therefore
  compares the solid component with the nodule *minus that expected rim*:
  ``rim_xy = PV_RIM_VOXELS x in-plane pixel (mean of y and x)`` and
  ``rim_z = PV_RIM_VOXELS x slice spacing``, each at least the blur
  :data:`PV_BLUR_MM`.
* **Type** from the consolidation-to-tumour ratio ``CTR = solid mean diameter / nodule mean
  diameter`` and its rim-corrected form ``CTR_pv = solid mean diameter / max(nodule mean
  diameter - 2 rim_xy, solid mean diameter, MIN_SOLID_COMPONENT_MM)``:

  - ground glass when there is no solid component, it is smaller than
    :data:`MIN_SOLID_COMPONENT_MM`, or ``CTR < GGN_MAX_CTR`` (0.25);
  - solid when ``CTR_pv >= SOLID_MIN_CTR`` (0.8) and the solid voxels make up at least
    :data:`SOLID_MIN_VOLUME_FRACTION` (0.5) of the mask volume expected inside the rim
    shell, i.e. ``solid fraction >= 0.5 x f_core`` with
    ``f_core = (1 - rim_xy / 2R)^2 (1 - rim_z / 2R)`` (clipped to [0, 1]; ``R`` = half the
    nodule mean diameter): the volume fraction of a solid ellipsoid left after peeling the
    *inner half* of the rim (the mask threshold cuts the rim about in the middle, so only
    half of it lies inside the mask);
  - part-solid otherwise.

  The diameter test is the lenient one (a whole voxel per side: it also absorbs the extra
  blur on the wall side of juxtapleural nodules); the volume test is the strict one and
  keeps part-solid nodules with a thin (~2 mm) ground-glass rim part-solid.

  At fine spacing (<= 0.8 mm pixels, <= 1.25 mm slices) the correction is under ~1.6 mm of
  diameter, so a part-solid nodule with a ground-glass rim of >= 2.5 mm per side keeps
  ``CTR_pv`` well under 0.8.

* **Calcified** when the mean HU exceeds :data:`CALCIFIED_MEAN_HU` (200) or at least
  :data:`CALCIFIED_MIN_FRACTION` (40 %) of the voxels exceed :data:`CALCIFIED_HU` (300).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from medsnowball.core.findings import NoduleType
from medsnowball.measure.axes import axial_axes

SOLID_HU = -300.0
MIN_SOLID_COMPONENT_MM = 1.5
GGN_MAX_CTR = 0.25
SOLID_MIN_CTR = 0.8
SOLID_MIN_VOLUME_FRACTION = 0.5
#: Width of the partial-volume rim of a solid nodule, in voxels per side.
PV_RIM_VOXELS = 1.0
#: Assumed scanner blur (Gaussian sigma, mm); the rim is never thinner than this.
PV_BLUR_MM = 0.7
CALCIFIED_MEAN_HU = 200.0
CALCIFIED_HU = 300.0
CALCIFIED_MIN_FRACTION = 0.4


@dataclass(frozen=True)
class Composition:
    """Attenuation analysis of one nodule mask.

    Attributes:
        type: Solid, part-solid or ground-glass.
        solid_fraction: Fraction of mask voxels above :data:`SOLID_HU`.
        solid_component_mm: Lung-RADS mean diameter of the solid component (0 if none).
        solid_volume_mm3: Volume of the solid component.
        ctr: Consolidation-to-tumour ratio (solid / whole mean diameter).
        ctr_pv: The same ratio with the expected partial-volume rim taken off the whole
            diameter (the one the type rule uses; at most 1).
        mean_hu: Mean HU inside the mask (unsmoothed).
        calcified: Dense calcification rule met.
    """

    type: NoduleType
    solid_fraction: float
    solid_component_mm: float
    solid_volume_mm3: float
    ctr: float
    mean_hu: float
    calcified: bool
    ctr_pv: float = 0.0


def partial_volume_rim_mm(spacing_zyx: tuple[float, float, float]) -> tuple[float, float]:
    """Expected partial-volume rim of a solid nodule, per side (rules in the module doc).

    Args:
        spacing_zyx: Voxel size in mm.

    Returns:
        ``(rim_xy_mm, rim_z_mm)``: in-plane and through-plane rim widths in mm.
    """
    in_plane = 0.5 * (float(spacing_zyx[1]) + float(spacing_zyx[2]))
    rim_xy = max(PV_RIM_VOXELS * in_plane, PV_BLUR_MM)
    rim_z = max(PV_RIM_VOXELS * float(spacing_zyx[0]), PV_BLUR_MM)
    return rim_xy, rim_z


def expected_core_fraction(mean_diameter_mm: float, rim_xy_mm: float, rim_z_mm: float) -> float:
    """Volume fraction of a solid nodule's mask left after peeling its partial-volume rim.

    Args:
        mean_diameter_mm: Mean diameter of the whole nodule.
        rim_xy_mm: In-plane rim per side.
        rim_z_mm: Through-plane rim per side.

    Returns:
        ``(1 - rim_xy / R)^2 (1 - rim_z / R)`` clipped to [0, 1], ``R`` = half the diameter.
    """
    radius = 0.5 * float(mean_diameter_mm)
    if radius <= 0:
        return 0.0
    fy = min(max(1.0 - rim_xy_mm / radius, 0.0), 1.0)
    fz = min(max(1.0 - rim_z_mm / radius, 0.0), 1.0)
    return fy * fy * fz


def solid_component_mask(
    hu_patch: NDArray[np.floating], mask: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """Largest connected solid part of a nodule mask.

    Args:
        hu_patch: HU values ``(z, y, x)`` around the nodule (same shape as ``mask``).
        mask: Nodule mask ``(z, y, x)``.

    Returns:
        Boolean ``(z, y, x)``: the solid component (may be empty).
    """
    smooth = ndi.gaussian_filter(np.asarray(hu_patch, dtype=np.float32), 0.5, truncate=2.0)
    solid = mask & (smooth > SOLID_HU)
    if not solid.any():
        return solid
    cross = np.zeros((1, 3, 3), dtype=bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    opened = ndi.binary_opening(solid, structure=cross)
    if opened.any():
        solid = opened
    lab, n = ndi.label(solid, structure=np.ones((3, 3, 3), dtype=bool))
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        solid = lab == (int(np.argmax(sizes)) + 1)
    return solid


def analyse_composition(
    hu_patch: NDArray[np.floating],
    mask: NDArray[np.bool_],
    spacing_zyx: tuple[float, float, float],
    mean_diameter_mm: float,
) -> Composition:
    """Type, solid component and calcification of a nodule (rules in the module doc).

    Args:
        hu_patch: HU values ``(z, y, x)`` (same shape as ``mask``).
        mask: Nodule mask ``(z, y, x)``; must not be empty.
        spacing_zyx: Voxel size in mm.
        mean_diameter_mm: Lung-RADS mean diameter of the whole nodule.

    Returns:
        The composition.
    """
    hu = np.asarray(hu_patch, dtype=np.float32)
    values = hu[mask]
    n = max(values.size, 1)
    mean_hu = float(values.mean()) if values.size else float("nan")
    smooth = ndi.gaussian_filter(hu, 0.5, truncate=2.0)
    solid_fraction = float(np.count_nonzero(smooth[mask] > SOLID_HU)) / n
    solid = solid_component_mask(hu, mask)
    voxel = float(np.prod(spacing_zyx))
    solid_volume = float(solid.sum()) * voxel
    solid_mm = axial_axes(solid, spacing_zyx).mean_diameter_mm if solid.any() else 0.0
    ctr = solid_mm / mean_diameter_mm if mean_diameter_mm > 0 else 0.0
    rim_xy, rim_z = partial_volume_rim_mm(spacing_zyx)
    core_mm = max(mean_diameter_mm - 2.0 * rim_xy, solid_mm, MIN_SOLID_COMPONENT_MM)
    ctr_pv = solid_mm / core_mm
    min_fraction = SOLID_MIN_VOLUME_FRACTION * expected_core_fraction(
        mean_diameter_mm, 0.5 * rim_xy, 0.5 * rim_z
    )
    if solid_mm < MIN_SOLID_COMPONENT_MM or ctr < GGN_MAX_CTR:
        kind = NoduleType.GROUND_GLASS
    elif ctr_pv >= SOLID_MIN_CTR and solid_fraction >= min_fraction:
        kind = NoduleType.SOLID
    else:
        kind = NoduleType.PART_SOLID
    calcified = bool(
        mean_hu > CALCIFIED_MEAN_HU
        or float(np.count_nonzero(values > CALCIFIED_HU)) / n >= CALCIFIED_MIN_FRACTION
    )
    if kind == NoduleType.SOLID:
        solid_mm = mean_diameter_mm
    elif kind == NoduleType.GROUND_GLASS:
        solid_mm = 0.0
    return Composition(
        type=kind,
        solid_fraction=solid_fraction,
        solid_component_mm=float(solid_mm),
        solid_volume_mm3=solid_volume,
        ctr=float(min(ctr, 1.0)),
        mean_hu=mean_hu,
        calcified=calcified,
        ctr_pv=float(min(ctr_pv, 1.0)),
    )


__all__ = [
    "CALCIFIED_HU",
    "CALCIFIED_MEAN_HU",
    "CALCIFIED_MIN_FRACTION",
    "GGN_MAX_CTR",
    "MIN_SOLID_COMPONENT_MM",
    "PV_BLUR_MM",
    "PV_RIM_VOXELS",
    "SOLID_HU",
    "SOLID_MIN_CTR",
    "SOLID_MIN_VOLUME_FRACTION",
    "Composition",
    "analyse_composition",
    "expected_core_fraction",
    "partial_volume_rim_mm",
    "solid_component_mask",
]
