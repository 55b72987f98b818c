"""Left/right lung assignment, with separation where the lungs touch.

Rule (documented in docs/cad.md): the body's left-right centre (world x of the body mask's
centroid) is the midline. A connected lung component with less than ``SPAN_FRACTION`` of
its voxels on one side of the midline belongs wholly to the side of its centroid
(patient's right = smaller LPS x). A component spanning both sides (lungs touching at the
anterior or posterior junction, or joined through a missed airway) is eroded in-plane,
one voxel at a time (up to ``MAX_EROSIONS``), until it falls apart into pieces on both
sides; each voxel of the component then takes the side of its nearest surviving piece.
Should erosion never separate it, each voxel takes the side of the midline it lies on.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.core.findings import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from medsnowball.core.volume import ImageGeometry

log = logging.getLogger(__name__)

SPAN_FRACTION = 0.10
MAX_EROSIONS = 10
#: A piece left after erosion must hold this fraction of the component to act as a seed.
MIN_SEED_FRACTION = 0.02


def _world_x(
    geometry: ImageGeometry, coords: NDArray[np.floating] | NDArray[np.integer]
) -> NDArray[np.float64]:
    """World x (LPS) of voxel indices ``(n, 3)``."""
    return geometry.index_to_world(coords)[:, 0]


def _bbox(mask: NDArray[np.bool_]) -> tuple[slice, ...]:
    idx = np.nonzero(mask)
    return tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)


def _split_component(
    comp: NDArray[np.bool_],
    offset: NDArray[np.intp],
    geometry: ImageGeometry,
    midline_x: float,
) -> NDArray[np.uint8]:
    """Right/left labels for a component spanning both sides (arrays are a bbox crop)."""
    struct = ndimage.generate_binary_structure(3, 1)
    struct[0] = False
    struct[2] = False
    total = int(comp.sum())
    eroded = comp
    for _ in range(MAX_EROSIONS):
        eroded = ndimage.binary_erosion(eroded, struct)
        if not eroded.any():
            break
        lab, n = ndimage.label(eroded)
        if n < 2:
            continue
        sizes = np.bincount(lab.ravel())
        seeds = np.zeros(comp.shape, np.uint8)
        sides = set()
        for label in range(1, n + 1):
            if sizes[label] < MIN_SEED_FRACTION * total:
                continue
            cz, cy, cx = ndimage.center_of_mass(lab == label)
            x = _world_x(geometry, np.array([[cz, cy, cx]]) + offset)[0]
            side = LABEL_RIGHT_LUNG if x < midline_x else LABEL_LEFT_LUNG
            seeds[lab == label] = side
            sides.add(side)
        if len(sides) == 2:
            _, nearest = ndimage.distance_transform_edt(
                seeds == 0, sampling=geometry.spacing_zyx, return_indices=True
            )
            assigned = seeds[tuple(nearest)]
            return np.where(comp, assigned, 0).astype(np.uint8)
    log.info("Lungs could not be separated by erosion; splitting at the midline.")
    zz, yy, xx = np.nonzero(comp)
    x = _world_x(geometry, np.stack([zz, yy, xx], axis=1) + offset)
    out = np.zeros(comp.shape, np.uint8)
    out[zz, yy, xx] = np.where(x < midline_x, LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG)
    return out


def assign_sides(
    lungs: NDArray[np.bool_], body: NDArray[np.bool_], geometry: ImageGeometry
) -> NDArray[np.uint8]:
    """Label lung voxels as right (1) or left (2).

    Args:
        lungs: Boolean lung mask ``(z, y, x)``.
        body: Boolean body mask ``(z, y, x)`` (its centroid gives the midline).
        geometry: Grid of the arrays.

    Returns:
        uint8 labels ``(z, y, x)``: 0 background, 1 right, 2 left.
    """
    labels = np.zeros(lungs.shape, np.uint8)
    if not lungs.any():
        return labels
    ref = body if body.any() else lungs
    centre = np.array(ndimage.center_of_mass(ref))
    midline_x = float(_world_x(geometry, centre[None])[0])
    lab, _n = ndimage.label(lungs)
    objects = ndimage.find_objects(lab)
    for i, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        comp = lab[sl] == i
        offset = np.array([s.start for s in sl])
        zz, yy, xx = np.nonzero(comp)
        x = _world_x(geometry, np.stack([zz, yy, xx], axis=1) + offset)
        frac_right = float(np.mean(x < midline_x))
        if min(frac_right, 1.0 - frac_right) < SPAN_FRACTION:
            side = LABEL_RIGHT_LUNG if frac_right >= 0.5 else LABEL_LEFT_LUNG
            labels[sl][comp] = side
        else:
            split = _split_component(comp, offset, geometry, midline_x)
            labels[sl][comp] = split[comp]
    return labels


__all__ = ["assign_sides"]
