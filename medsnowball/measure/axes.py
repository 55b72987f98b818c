"""In-plane axis measurements of a mask, as radiologists measure nodules (Lung-RADS).

On the axial slice where the mask's area is largest:

* the **long axis** is the largest distance between two points of the outline (maximum
  Feret diameter);
* the **short axis** is the longest chord perpendicular to the long axis;
* the **mean diameter** is ``(long + short) / 2``, rounded half-up to 0.1 mm (Lung-RADS).

The outline is the sub-voxel contour of the binary slice at level 0.5 (marching squares),
which runs half-way between inside and outside voxel centres; distances are in millimetres
using the in-plane voxel spacing, so anisotropic pixels are handled. When several slices
share the largest area, the one with the longest long axis is used.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import find_contours

from medsnowball.core.errors import ConfigError

Point2 = tuple[float, float]

_SMOOTH_PX = 0.65


@dataclass(frozen=True)
class AxialAxes:
    """Long/short axis measurement on one axial slice.

    Attributes:
        long_axis_mm: Maximum Feret diameter in mm.
        short_axis_mm: Longest chord perpendicular to the long axis, in mm.
        mean_diameter_mm: ``(long + short) / 2`` rounded half-up to 0.1 mm.
        slice_index: Index (along z of the given mask) of the measured slice.
        area_mm2: Area of the mask on that slice (voxel count times pixel area).
        long_axis_yx: End points of the long axis as fractional (row, column) indices.
        short_axis_yx: End points of the short axis as fractional (row, column) indices.
    """

    long_axis_mm: float
    short_axis_mm: float
    mean_diameter_mm: float
    slice_index: int
    area_mm2: float
    long_axis_yx: tuple[Point2, Point2]
    short_axis_yx: tuple[Point2, Point2]


def round_half_up(value: float, decimals: int = 1) -> float:
    """Round half away from zero for non-negative values (12.25 -> 12.3, not 12.2).

    Args:
        value: Value to round.
        decimals: Number of decimals.

    Returns:
        The rounded value.
    """
    f = 10.0**decimals
    return float(np.floor(value * f + 0.5 + 1e-9) / f)


def _outline_mm(slice_mask: NDArray[np.bool_], sy: float, sx: float) -> list[NDArray[np.float64]]:
    """Closed sub-voxel contours of a 2-D mask, as (N, 2) arrays of (y, x) in mm."""
    padded = np.pad(slice_mask.astype(np.float32), 2)
    contours = []
    if _SMOOTH_PX > 0:
        smooth = gaussian_filter(padded, _SMOOTH_PX, mode="constant", truncate=3.0)
        contours = find_contours(smooth, 0.5)
    if not contours:  # tiny masks vanish when smoothed: use the raw outline
        contours = find_contours(padded, 0.5)
    return [(c - 2.0) * np.array([sy, sx]) for c in contours if len(c) >= 2]


def _feret(points: NDArray[np.float64]) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Maximum distance between points (via their convex hull)."""
    pts = np.unique(points, axis=0)
    if pts.shape[0] >= 3:
        with contextlib.suppress(QhullError):  # collinear points: keep them all
            pts = pts[ConvexHull(pts).vertices]
    d2 = np.sum((pts[:, None, :] - pts[None, :, :]) ** 2, axis=-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    return float(np.sqrt(d2[i, j])), pts[i], pts[j]


def _perpendicular_chord(
    contours: list[NDArray[np.float64]], p: NDArray[np.float64], q: NDArray[np.float64]
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Longest chord of the outline perpendicular to the segment p-q.

    The span of the outline along a line perpendicular to ``u = (q - p)/|q - p|`` is
    piecewise linear in the line's position, so its maximum lies at a vertex position:
    every vertex position is tried exactly.
    """
    u = (q - p) / max(float(np.linalg.norm(q - p)), 1e-12)
    v = np.array([-u[1], u[0]])
    edges_a, edges_b = [], []
    for c in contours:
        closed = c if np.allclose(c[0], c[-1]) else np.vstack([c, c[:1]])
        edges_a.append(closed[:-1])
        edges_b.append(closed[1:])
    e0 = np.vstack(edges_a)
    e1 = np.vstack(edges_b)
    a0, a1 = e0 @ u, e1 @ u
    b0, b1 = e0 @ v, e1 @ v
    t = np.unique(np.concatenate([a0, a1]))[:, None]  # (n_t, 1)
    lo, hi = np.minimum(a0, a1)[None, :], np.maximum(a0, a1)[None, :]
    tol = 1e-9
    inside = (lo - tol <= t) & (t <= hi + tol)
    da = a1 - a0
    flat = np.abs(da) < 1e-12
    w = np.where(flat[None, :], 0.0, (t - a0[None, :]) / np.where(flat, 1.0, da)[None, :])
    b = b0[None, :] + np.clip(w, 0.0, 1.0) * (b1 - b0)[None, :]
    b_end = np.where(flat[None, :], b1[None, :], b)  # flat edges contribute both ends
    big = np.inf
    bmax = np.maximum(np.where(inside, b, -big).max(axis=1), np.where(inside, b_end, -big).max(1))
    bmin = np.minimum(np.where(inside, b, big).min(axis=1), np.where(inside, b_end, big).min(1))
    span = np.where(np.isfinite(bmax) & np.isfinite(bmin), bmax - bmin, 0.0)
    k = int(np.argmax(span))
    tk = float(t[k, 0])
    return float(span[k]), tk * u + bmin[k] * v, tk * u + bmax[k] * v


def slice_axes(
    slice_mask: NDArray[np.bool_], spacing_yx: tuple[float, float]
) -> tuple[float, float, tuple[Point2, Point2], tuple[Point2, Point2]]:
    """Long and short axis of a 2-D mask.

    Args:
        slice_mask: Boolean array ``(y, x)``.
        spacing_yx: Pixel size in mm (row, column).

    Returns:
        ``(long_mm, short_mm, long_end_points_yx, short_end_points_yx)``; end points are
        fractional (row, column) indices. All zero for an empty mask.
    """
    sy, sx = float(spacing_yx[0]), float(spacing_yx[1])
    if not slice_mask.any():
        zero = ((0.0, 0.0), (0.0, 0.0))
        return 0.0, 0.0, zero, zero
    contours = _outline_mm(slice_mask, sy, sx)
    pts = np.vstack(contours)
    long_mm, p, q = _feret(pts)
    short_mm, s0, s1 = _perpendicular_chord(contours, p, q)
    scale = np.array([sy, sx])

    def to_idx(a: NDArray[np.float64]) -> Point2:
        r = a / scale
        return (float(r[0]), float(r[1]))

    return long_mm, short_mm, (to_idx(p), to_idx(q)), (to_idx(s0), to_idx(s1))


def axial_axes(mask: NDArray[np.bool_], spacing_zyx: tuple[float, float, float]) -> AxialAxes:
    """Lung-RADS long/short axis and mean diameter on the axial slice of largest area.

    Args:
        mask: Boolean array ``(z, y, x)`` (or ``(y, x)`` for one slice).
        spacing_zyx: Voxel size in mm (z, y, x); only y and x are used.

    Returns:
        The measurement (all zero for an empty mask).

    Raises:
        ConfigError: If the mask is not 2-D or 3-D.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ConfigError(f"axial_axes expects a (z, y, x) or (y, x) mask, got shape {m.shape}.")
    sy, sx = float(spacing_zyx[1]), float(spacing_zyx[2])
    areas = m.reshape(m.shape[0], -1).sum(axis=1)
    if areas.max(initial=0) == 0:
        zero = ((0.0, 0.0), (0.0, 0.0))
        return AxialAxes(0.0, 0.0, 0.0, 0, 0.0, zero, zero)
    tied = np.flatnonzero(areas == areas.max())
    results = [slice_axes(m[k], (sy, sx)) for k in tied]
    pick = int(np.argmax([r[0] for r in results]))
    best, best_k = results[pick], int(tied[pick])
    long_mm, short_mm, lp, sp = best
    return AxialAxes(
        long_axis_mm=long_mm,
        short_axis_mm=short_mm,
        mean_diameter_mm=round_half_up((long_mm + short_mm) / 2.0, 1),
        slice_index=best_k,
        area_mm2=float(areas[best_k]) * sy * sx,
        long_axis_yx=lp,
        short_axis_yx=sp,
    )


__all__ = ["AxialAxes", "axial_axes", "round_half_up", "slice_axes"]
