"""Exact Euclidean morphology on anisotropic grids, via distance transforms.

A ball of radius ``r`` mm on a grid with spacing ``(sz, sy, sx)`` is not a fixed voxel
stencil, and large stencils are slow. Distance transforms give exact Euclidean dilation,
erosion, opening and closing for any radius and spacing in a time that does not depend on
the radius.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

Spacing = tuple[float, float, float]

_FULL = np.ones((3, 3, 3), dtype=bool)


def edt_inside(mask: NDArray[np.bool_], spacing: Spacing) -> NDArray[np.float64]:
    """Distance (mm) from each voxel of ``mask`` to the nearest voxel outside it (0 outside).

    Voxels beyond the array edge count as outside.
    """
    padded = np.pad(mask, 1)
    d = ndi.distance_transform_edt(padded, sampling=spacing)
    return np.asarray(d[1:-1, 1:-1, 1:-1], dtype=np.float64)


def edt_outside(mask: NDArray[np.bool_], spacing: Spacing) -> NDArray[np.float64]:
    """Distance (mm) from each voxel to the nearest voxel of ``mask`` (inf if it is empty)."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return np.asarray(ndi.distance_transform_edt(~mask, sampling=spacing), dtype=np.float64)


def dilate(mask: NDArray[np.bool_], radius_mm: float, spacing: Spacing) -> NDArray[np.bool_]:
    """Dilation by a Euclidean ball of ``radius_mm``."""
    return edt_outside(mask, spacing) <= radius_mm


def erode(mask: NDArray[np.bool_], radius_mm: float, spacing: Spacing) -> NDArray[np.bool_]:
    """Erosion by a Euclidean ball of ``radius_mm`` (outside the array counts as background)."""
    return edt_inside(mask, spacing) > radius_mm


def opening(mask: NDArray[np.bool_], radius_mm: float, spacing: Spacing) -> NDArray[np.bool_]:
    """Opening (union of all balls of ``radius_mm`` that fit inside ``mask``)."""
    return dilate(erode(mask, radius_mm, spacing), radius_mm, spacing) & mask


def closing(mask: NDArray[np.bool_], radius_mm: float, spacing: Spacing) -> NDArray[np.bool_]:
    """Closing by a ball of ``radius_mm``; the array edge is extended (no erosion from it)."""
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in spacing]
    padded = np.pad(mask, [(p, p) for p in pad], mode="edge")
    grown = edt_outside(padded, spacing) <= radius_mm
    shrunk = np.asarray(ndi.distance_transform_edt(grown, sampling=spacing)) > radius_mm
    inner = tuple(slice(p, p + n) for p, n in zip(pad, mask.shape, strict=True))
    return np.asarray(shrunk[inner] | mask)


def ball(
    shape: Sequence[int],
    center: Sequence[float] | NDArray[np.floating],
    radius_mm: float,
    spacing: Spacing,
) -> NDArray[np.bool_]:
    """Boolean ball of ``radius_mm`` around a fractional index ``center`` (z, y, x)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing, strict=True))
    return np.asarray(d2 <= radius_mm**2)


def component_at(
    mask: NDArray[np.bool_],
    seed: Sequence[int],
    spacing: Spacing,
    search_mm: float = 0.0,
) -> NDArray[np.bool_]:
    """The 26-connected component of ``mask`` holding ``seed``.

    When the seed voxel is background, the component nearest to it within ``search_mm``
    is returned (empty if none).

    Args:
        mask: Boolean array ``(z, y, x)``.
        seed: Voxel index (z, y, x).
        spacing: Voxel size (mm).
        search_mm: How far to look for a component when the seed is background.

    Returns:
        Boolean array of the component.
    """
    lab, n = ndi.label(mask, structure=_FULL)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    s = tuple(int(v) for v in seed)
    value = int(lab[s])
    if value == 0:
        if search_mm <= 0:
            return np.zeros(mask.shape, dtype=bool)
        r = [int(np.ceil(search_mm / sp)) for sp in spacing]
        lo = [max(0, c - k) for c, k in zip(s, r, strict=True)]
        hi = [min(m, c + k + 1) for c, m, k in zip(s, mask.shape, r, strict=True)]
        win = lab[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        idx = np.argwhere(win > 0)
        if idx.size == 0:
            return np.zeros(mask.shape, dtype=bool)
        d2 = np.sum(((idx + np.asarray(lo) - np.asarray(s)) * np.asarray(spacing)) ** 2, axis=1)
        best = int(np.argmin(d2))
        if d2[best] > search_mm**2:
            return np.zeros(mask.shape, dtype=bool)
        value = int(win[tuple(idx[best])])
    return np.asarray(lab == value)


__all__ = [
    "ball",
    "closing",
    "component_at",
    "dilate",
    "edt_inside",
    "edt_outside",
    "erode",
    "opening",
]
