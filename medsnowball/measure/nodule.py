"""Measure a segmented nodule: the :class:`~medsnowball.core.Nodule` record.

Everything is measured on the source grid of the CT (the mask is a patch of that grid):

* centre: centroid of the mask, world LPS mm via :meth:`CTVolume.index_to_world`;
* long / short axis and Lung-RADS mean diameter on the axial slice of largest area
  (:mod:`medsnowball.measure.axes`);
* volume = voxel count x voxel volume; equivalent-sphere diameter ``(6 V / pi)^(1/3)``;
* mean HU, type, solid component, calcification (:mod:`medsnowball.measure.composition`);
* side / zone (:func:`medsnowball.lung.locate`) and pleural contact
  (:mod:`medsnowball.measure.location`).
"""

from __future__ import annotations

import numpy as np

from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import LungSegmentation, Nodule, NoduleSegmentation
from medsnowball.core.volume import CTVolume
from medsnowball.measure.axes import axial_axes
from medsnowball.measure.composition import analyse_composition
from medsnowball.measure.location import is_juxtapleural, side_and_zone

#: Voxels of context around the mask used for smoothing the HU patch.
_CONTEXT_VOXELS = 2


def measure_nodule(
    volume: CTVolume,
    seg: NoduleSegmentation,
    lungs: LungSegmentation | None,
    *,
    nodule_id: int,
    score: float,
) -> Nodule:
    """Measure one segmented nodule.

    Args:
        volume: The CT the mask was computed on.
        seg: The nodule mask (a patch of the volume's grid).
        lungs: Lung segmentation on the same grid (side, zone, pleural contact), or
            ``None`` (side and zone are then ``None``).
        nodule_id: 1-based id of the nodule in the case.
        score: Detection confidence in [0, 1].

    Returns:
        The nodule with every field filled (``lung_rads`` is left to the assessment step).

    Raises:
        ConfigError: If the mask is empty or does not fit in the volume.
    """
    mask = np.asarray(seg.mask, dtype=bool)
    off = (int(seg.offset_zyx[0]), int(seg.offset_zyx[1]), int(seg.offset_zyx[2]))
    if mask.ndim != 3 or not mask.any():
        raise ConfigError(
            f"measure_nodule needs a non-empty 3-D mask; nodule {nodule_id} has "
            f"shape {mask.shape} with {int(mask.sum())} voxels."
        )
    if any(o < 0 or o + s > n for o, s, n in zip(off, mask.shape, volume.shape, strict=True)):
        raise ConfigError(
            f"Nodule {nodule_id}: mask patch at {off} with shape {mask.shape} does not fit "
            f"in the volume {volume.shape} of {volume.source!r}."
        )
    spacing = volume.spacing_zyx
    # HU patch with a little context (for the composition's smoothing)
    lo = [max(0, o - _CONTEXT_VOXELS) for o in off]
    hi = [
        min(n, o + s + _CONTEXT_VOXELS)
        for o, s, n in zip(off, mask.shape, volume.shape, strict=True)
    ]
    hu = np.asarray(volume.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float32)
    big = np.zeros(hu.shape, dtype=bool)
    inner = tuple(slice(o - a, o - a + s) for o, a, s in zip(off, lo, mask.shape, strict=True))
    big[inner] = mask

    idx = np.argwhere(mask).mean(axis=0) + np.asarray(off, dtype=np.float64)
    center = volume.index_to_world(idx)
    center_lps = (float(center[0]), float(center[1]), float(center[2]))

    axes = axial_axes(mask, spacing)
    volume_mm3 = float(mask.sum()) * float(np.prod(spacing))
    eq_diam = float((6.0 * volume_mm3 / np.pi) ** (1.0 / 3.0))
    comp = analyse_composition(hu, big, spacing, axes.mean_diameter_mm)
    side, zone = side_and_zone(lungs, center_lps)
    juxta = is_juxtapleural(volume, mask, off, lungs)
    return Nodule(
        id=int(nodule_id),
        center_lps=center_lps,
        score=float(score),
        diameter_mm=axes.mean_diameter_mm,
        long_axis_mm=float(axes.long_axis_mm),
        short_axis_mm=float(axes.short_axis_mm),
        volume_mm3=volume_mm3,
        equivalent_diameter_mm=eq_diam,
        type=comp.type,
        solid_component_mm=comp.solid_component_mm,
        mean_hu=comp.mean_hu,
        side=side,
        zone=zone,
        juxtapleural=juxta,
        calcified=comp.calcified,
    )


__all__ = ["measure_nodule"]
