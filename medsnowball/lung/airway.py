"""Trachea and large airways, found by tracking the air column down from the neck.

Rule (documented in docs/cad.md):

1. **Seed.** In the cranial part of the scan (the top 40 % of the slices that hold
   low-density voxels inside the body) look, slice by slice from the top, for a 2-D
   region of pure air (< ``AIR_HU``) that is trachea-shaped: 40-800 mm^2 (7-32 mm
   across), roundish (eccentricity < 0.9), within 30 mm of the body's left-right centre
   and surrounded by tissue (< 25 % of a 2-voxel ring around it is low-density). The first
   slice with such a region gives the seed; none found (abdomen scans, short ranges below
   the carina) means no airway is removed.
2. **Tracking.** Going caudally slice by slice, every pure-air 2-D region that overlaps the
   (one-voxel dilated) airway of the previous slice joins the airway, provided it is
   tube-sized (< 800 mm^2). A larger region means the air column has opened into lung
   parenchyma (emphysema, a lung touching the bronchus wall): it is not followed. Tracking
   stops when no region joins.
3. The airway is dilated by one voxel in-plane (its wall's partial-volume rim) before it is
   removed from the lungs. Intrapulmonary bronchi that the tracking may have followed are
   refilled by the lungs' hole filling later, so only the trachea and the main bronchi,
   which border the mediastinum, stay out of the lung mask.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage.measure import regionprops

from medsnowball.core.volume import ImageGeometry

log = logging.getLogger(__name__)

#: HU below which a (block-averaged) voxel counts as pure air.
AIR_HU = -900.0
#: Cross-section limits of a trachea / tracked airway region (mm^2).
SEED_AREA_MM2 = (40.0, 800.0)
TRACK_MAX_AREA_MM2 = 800.0
#: Largest distance of the trachea from the body's left-right centre (mm).
SEED_MAX_OFFCENTRE_MM = 30.0


def _slice_order_cranial_first(geometry: ImageGeometry) -> NDArray[np.intp]:
    nz = geometry.shape_zyx[0]
    idx = np.zeros((nz, 3))
    idx[:, 0] = np.arange(nz)
    z_world = geometry.index_to_world(idx)[:, 2]
    return np.argsort(-z_world, kind="stable")


def _find_seed(
    hu: NDArray[np.floating],
    low: NDArray[np.bool_],
    body: NDArray[np.bool_],
    geometry: ImageGeometry,
    order: NDArray[np.intp],
) -> tuple[int, NDArray[np.bool_]] | None:
    sy, sx = geometry.spacing_zyx[1], geometry.spacing_zyx[2]
    px_area = sy * sx
    with_air = [k for k in order if low[k].any()]
    if not with_air:
        return None
    n_search = max(1, int(np.ceil(0.4 * len(with_air))))
    ring_struct = np.ones((5, 5), bool)
    for k in with_air[:n_search]:
        body_k = body[k]
        if not body_k.any():
            continue
        yy, xx = np.nonzero(body_k)
        centre = geometry.index_to_world([k, yy.mean(), xx.mean()])
        pure = (hu[k] < AIR_HU) & low[k]
        lab, _n = ndimage.label(pure)
        best: tuple[float, int] | None = None
        for region in regionprops(lab):
            area = region.area * px_area
            if not (SEED_AREA_MM2[0] <= area <= SEED_AREA_MM2[1]):
                continue
            if region.area >= 5 and region.eccentricity > 0.9:
                continue
            cy, cx = region.centroid
            world = geometry.index_to_world([k, cy, cx])
            off = abs(float(world[0] - centre[0]))
            if off > SEED_MAX_OFFCENTRE_MM:
                continue
            comp = lab == region.label
            ring = ndimage.binary_dilation(comp, ring_struct) & ~comp
            if ring.sum() == 0 or (low[k][ring]).mean() > 0.25:
                continue
            if best is None or off < best[0]:
                best = (off, region.label)
        if best is not None:
            return int(k), lab == best[1]
    return None


def large_airways(
    hu: NDArray[np.floating],
    low: NDArray[np.bool_],
    body: NDArray[np.bool_],
    geometry: ImageGeometry,
) -> NDArray[np.bool_]:
    """Trachea and large bronchi on a (working) grid.

    Args:
        hu: HU array ``(z, y, x)``.
        low: Low-density voxels inside the body ``(z, y, x)`` (lungs, airways, gas).
        body: Body mask ``(z, y, x)``.
        geometry: Grid of the arrays (for world z and x).

    Returns:
        Boolean airway mask ``(z, y, x)`` (all False when no trachea is found), already
        dilated by one voxel in-plane.
    """
    airway = np.zeros(hu.shape, bool)
    order = _slice_order_cranial_first(geometry)
    found = _find_seed(hu, low, body, geometry, order)
    if found is None:
        log.debug("No trachea found; no airway removed.")
        return airway
    k0, seed = found
    px_area = geometry.spacing_zyx[1] * geometry.spacing_zyx[2]
    airway[k0] = seed
    prev = seed
    pos = int(np.nonzero(order == k0)[0][0])
    cross = ndimage.generate_binary_structure(2, 1)
    for k in order[pos + 1 :]:
        reach = ndimage.binary_dilation(prev, cross)
        pure = (hu[k] < AIR_HU) & low[k]
        lab, n = ndimage.label(pure)
        if n == 0:
            break
        touched = np.unique(lab[reach & pure])
        touched = touched[touched > 0]
        if touched.size == 0:
            break
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        keep = [t for t in touched if sizes[t] * px_area <= TRACK_MAX_AREA_MM2]
        if not keep:
            break
        cur = np.isin(lab, keep)
        airway[k] = cur
        prev = cur
    dilated = ndimage.binary_dilation(airway, ndimage.generate_binary_structure(3, 1)[1:2])
    return dilated & body


__all__ = ["AIR_HU", "large_airways"]
