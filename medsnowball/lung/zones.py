"""Cranio-caudal zones and point location (side, zone) in a lung segmentation.

Side rule: a point inside a lung takes that lung's label. A point outside both lungs (a
juxtapleural nodule the mask missed) takes the side of its world x relative to the
mediastinal midline ``LungSegmentation.midline_x_lps`` (patient's right = smaller LPS x),
or, without a midline, the label of the nearest lung voxel. A label that contradicts the
world side of a point lying more than ``SIDE_CONTRADICTION_MM`` from the midline is
overruled by the world side (a left/right split error must not move a nodule to the other
lung).

Zone rule: the lungs' cranio-caudal extent is the world z range (LPS mm) spanned by the
centres of the axial slices that hold any lung voxel, both lungs together. It is cut into
thirds: **upper** at or above the upper/middle boundary, **lower** below the middle/lower
boundary, **middle** in between (the same rule as :mod:`medsnowball.synth` uses for its
ground truth).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medsnowball.core.findings import (
    LABEL_LEFT_LUNG,
    LABEL_RIGHT_LUNG,
    LungSegmentation,
    Side,
    Zone,
)
from medsnowball.core.volume import ImageGeometry

#: How far (mm) :func:`locate` looks for the nearest lung voxel when a point lies outside.
LOCATE_SEARCH_MM = 15.0
#: Distance (mm) from the midline beyond which the world side overrules a lung label.
SIDE_CONTRADICTION_MM = 20.0


def lung_zone_bounds(
    labels: NDArray[np.integer], geometry: ImageGeometry
) -> tuple[float, float] | None:
    """World z of the upper/middle and middle/lower zone boundaries.

    Args:
        labels: Lung labels ``(z, y, x)`` (any value > 0 is lung).
        geometry: Grid of ``labels``.

    Returns:
        ``(z_upper_middle, z_middle_lower)`` in LPS mm (the first is the larger, +z being
        cranial), or ``None`` when there is no lung voxel.
    """
    per_slice = np.asarray(labels > 0).reshape(labels.shape[0], -1).any(axis=1)
    ks = np.nonzero(per_slice)[0]
    if ks.size == 0:
        return None
    ny, nx = geometry.shape_zyx[1:]
    idx = np.zeros((ks.size, 3))
    idx[:, 0] = ks
    idx[:, 1] = (ny - 1) / 2.0
    idx[:, 2] = (nx - 1) / 2.0
    z = geometry.index_to_world(idx)[:, 2]
    top, bottom = float(z.max()), float(z.min())
    third = (top - bottom) / 3.0
    return (top - third, bottom + third)


def zone_of_z(z_lps: float, bounds: tuple[float, float]) -> Zone:
    """Zone of a world z given :func:`lung_zone_bounds`.

    Args:
        z_lps: World z in LPS mm.
        bounds: ``(z_upper_middle, z_middle_lower)``.

    Returns:
        The zone.
    """
    upper_middle, middle_lower = bounds
    if z_lps >= upper_middle:
        return Zone.UPPER
    if z_lps >= middle_lower:
        return Zone.MIDDLE
    return Zone.LOWER


def side_of_label(label: int) -> Side | None:
    """Map a label value to a side (``None`` for background)."""
    if label == LABEL_RIGHT_LUNG:
        return Side.RIGHT
    if label == LABEL_LEFT_LUNG:
        return Side.LEFT
    return None


def world_side(x_lps: float, midline_x_lps: float) -> Side:
    """Side of a world x relative to the midline (patient's right = smaller LPS x).

    Args:
        x_lps: World x in LPS mm.
        midline_x_lps: World x of the mediastinal midline.

    Returns:
        The side.
    """
    return Side.RIGHT if x_lps < midline_x_lps else Side.LEFT


def _resolve_side(
    label_side: Side | None, inside: bool, x_lps: float, midline_x_lps: float | None
) -> Side | None:
    """Side rule of the module (label, world side, contradiction margin)."""
    if midline_x_lps is None or label_side is None:
        return label_side
    by_world = world_side(x_lps, midline_x_lps)
    if not inside:
        return by_world
    if label_side is not by_world and abs(x_lps - midline_x_lps) > SIDE_CONTRADICTION_MM:
        return by_world
    return label_side


def locate(lungs: LungSegmentation, center_lps: ArrayLike) -> tuple[Side | None, Zone | None]:
    """Side and zone of a world position.

    The side follows the module's side rule: the label of the voxel holding the point; for
    a point outside both lungs with a lung voxel within ``LOCATE_SEARCH_MM``, the world
    side relative to ``lungs.midline_x_lps`` (the nearest lung voxel's label when the
    midline is unknown); a contradicting label far from the midline yields to the world
    side. The zone follows the rule of this module (``lungs.zone_bounds_z``, or computed
    from the labels).

    Args:
        lungs: A lung segmentation.
        center_lps: World position (x, y, z) in LPS mm.

    Returns:
        ``(side, zone)``; both ``None`` when no lung voxel lies within the search radius.
    """
    geometry = lungs.geometry
    p = np.asarray(center_lps, dtype=np.float64).reshape(3)
    idx = geometry.world_to_index(p)
    shape = np.asarray(geometry.shape_zyx)
    spacing = np.asarray(geometry.spacing_zyx)
    r = np.ceil(LOCATE_SEARCH_MM / spacing).astype(int)
    centre = np.rint(idx).astype(int)
    lo = np.clip(centre - r, 0, shape)
    hi = np.clip(centre + r + 1, 0, shape)
    if np.any(hi <= lo):
        return None, None
    window = np.asarray(lungs.labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])
    zz, yy, xx = np.nonzero(window)
    if zz.size == 0:
        return None, None
    d2 = (
        ((zz + lo[0] - idx[0]) * spacing[0]) ** 2
        + ((yy + lo[1] - idx[1]) * spacing[1]) ** 2
        + ((xx + lo[2] - idx[2]) * spacing[2]) ** 2
    )
    best = int(np.argmin(d2))
    if d2[best] > LOCATE_SEARCH_MM**2:
        return None, None
    own = 0
    if np.all(centre >= 0) and np.all(centre < shape):
        own = int(lungs.labels[centre[0], centre[1], centre[2]])
    label = own if own > 0 else int(window[zz[best], yy[best], xx[best]])
    side = _resolve_side(
        side_of_label(label),
        own > 0,
        float(p[0]),
        lungs.midline_x_lps,
    )
    bounds = lungs.zone_bounds_z or lung_zone_bounds(lungs.labels, geometry)
    zone = zone_of_z(float(p[2]), bounds) if bounds is not None else None
    return side, zone


__all__ = [
    "LOCATE_SEARCH_MM",
    "SIDE_CONTRADICTION_MM",
    "locate",
    "lung_zone_bounds",
    "side_of_label",
    "world_side",
    "zone_of_z",
]
