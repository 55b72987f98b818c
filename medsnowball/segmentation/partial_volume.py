"""Partial-volume correction of a thresholded nodule mask on the source grid.

Scanner blur spreads a nodule's attenuation into its surroundings without changing its
total: summed over a neighbourhood that holds the whole blurred nodule,
``sum(I - P) = (L - P) * V`` with ``P`` the parenchyma level, ``L`` the nodule's level at
its boundary and ``V`` its true volume. A 50 % threshold finds the true edge of large
objects, but on small, curved ones the blur pulls the 50 % surface inwards (about
``sigma^2 / R``): a 5 mm nodule loses ~20 % of its volume. This module

1. estimates ``V`` from that sum: interior voxels count 1, the voxels of the mask's
   boundary and of a band around it (as wide as the blur, inside the lung, nearer to the
   mask than to any other dense structure) count ``(I - P) / (L - P)`` (capped at 1);
2. grows the mask by the brightest band voxels next to it, or shrinks it by its faintest
   boundary voxels, until its voxel count matches ``V`` (at most a few voxel layers, and at
   most :data:`MAX_CHANGE` of the volume).

Ranking by (lightly smoothed) intensity moves the edge where the image says the object
is, so the mask grows most along z when slices are thick.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from medsnowball.segmentation.morphology import Spacing, component_at, edt_outside

#: Largest relative change of the voxel count.
MAX_CHANGE = 0.6
#: Band width in blur sigmas.
BAND_SIGMAS = 2.5

_CROSS = ndi.generate_binary_structure(3, 1)
_FULL = ndi.generate_binary_structure(3, 3)


def pv_volume_voxels(
    hu: NDArray[np.float32],
    mask: NDArray[np.bool_],
    band: NDArray[np.bool_],
    parenchyma: float,
    level: float,
) -> float:
    """Partial-volume estimate of the object's voxel count.

    Args:
        hu: Raw HU ``(z, y, x)``.
        mask: Thresholded object ``(z, y, x)``.
        band: Voxels outside the mask that may hold the object's blurred edge.
        parenchyma: Background level ``P``.
        level: Object level at its boundary ``L`` (> ``P``).

    Returns:
        Estimated volume in voxels.
    """
    span = max(level - parenchyma, 1.0)
    edge = mask & ~ndi.binary_erosion(mask, _CROSS, border_value=0)
    interior = int(np.count_nonzero(mask & ~edge))
    f_edge = np.minimum((hu[edge] - parenchyma) / span, 1.0)
    f_band = np.minimum((hu[band] - parenchyma) / span, 1.0)
    return float(interior + f_edge.sum() + f_band.sum())


def correct_partial_volume(
    hu: NDArray[np.float32],
    smooth: NDArray[np.float32],
    mask: NDArray[np.bool_],
    lung: NDArray[np.bool_],
    *,
    threshold: float,
    parenchyma: float,
    level: float,
    spacing: Spacing,
    blur_sigma_mm: float,
    seed: tuple[int, int, int],
    max_layers: int = 2,
) -> NDArray[np.bool_]:
    """Adjust a mask's volume to the partial-volume estimate (see module doc).

    Args:
        hu: Raw HU of the source-grid patch ``(z, y, x)``.
        smooth: Lightly smoothed HU (ranking), same shape.
        mask: Thresholded nodule, same shape.
        lung: Where the nodule may lie (local lung), same shape.
        threshold: Threshold that produced ``mask``.
        parenchyma: Parenchyma level.
        level: Nodule level at its boundary (ground glass for sub-solid nodules).
        spacing: Source voxel size (mm).
        blur_sigma_mm: Assumed in-plane scanner blur (sigma, mm); the voxel footprint is
            added per axis.
        seed: Seed voxel (kept in the result's component).
        max_layers: Most voxel layers added or removed.

    Returns:
        The corrected mask.
    """
    if not mask.any() or level - parenchyma < 50.0:
        return mask
    sig = [float(np.hypot(blur_sigma_mm, s / 2.355)) for s in spacing]
    semi = [max(s * 1.01, BAND_SIGMAS * g) for s, g in zip(spacing, sig, strict=True)]
    scaled = (spacing[0] / semi[0], spacing[1] / semi[1], spacing[2] / semi[2])
    near = edt_outside(mask, scaled) <= 1.0
    other = (smooth > threshold) & ~mask
    band = near & ~mask & lung
    if other.any():
        # blurred edges belong to the nearest structure: a vessel's or the wall's halo is
        # not the nodule's (Voronoi split of the band), nor are their own voxels
        other = ndi.binary_dilation(other, _FULL)
        band &= ~other & (edt_outside(mask, spacing) < edt_outside(other, spacing))
    n_now = int(mask.sum())
    target = pv_volume_voxels(hu, mask, band, parenchyma, level)
    target = float(np.clip(target, n_now * (1 - MAX_CHANGE), n_now * (1 + MAX_CHANGE)))
    out = mask.copy()
    for _ in range(max_layers):
        delta = round(target) - int(out.sum())
        if delta == 0:
            break
        if delta > 0:
            ring = ndi.binary_dilation(out, _FULL) & ~out & band
            idx = np.flatnonzero(ring)
            if idx.size == 0:
                break
            order = np.argsort(smooth.ravel()[idx])[::-1][:delta]
            out.ravel()[idx[order]] = True
        else:
            edge = out & ~ndi.binary_erosion(out, _CROSS, border_value=0)
            edge[seed] = False
            idx = np.flatnonzero(edge)
            if idx.size == 0:
                break
            order = np.argsort(smooth.ravel()[idx])[:-delta]
            out.ravel()[idx[order]] = False
    kept = component_at(out, seed, spacing, search_mm=2.0 * max(spacing))
    return kept if kept.any() else mask


__all__ = ["BAND_SIGMAS", "MAX_CHANGE", "correct_partial_volume", "pv_volume_voxels"]
