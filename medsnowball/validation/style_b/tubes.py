"""Partial-volume rasterisation of tapered tubes (capsules) into a HU volume.

Occupancy of a voxel = fraction of its footprint, measured along the tube's surface normal,
inside the tube: ``clip((r - d) / h + 1/2, 0, 1)`` with ``d`` the distance of the voxel
centre from the axis and ``h`` the voxel's extent along the normal, so thick slices blur a
vessel that crosses them obliquely more than one running in-plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Grid:
    """Voxel grid: ``world_zyx = origin_zyx + index * spacing_zyx`` (mm)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axis(self, a: int) -> NDArray[np.float64]:
        """World coordinates (mm) of the voxel centres along axis ``a``."""
        return np.asarray(
            self.origin[a] + np.arange(self.shape[a]) * self.spacing[a], dtype=np.float64
        )

    def to_index(self, p_zyx: NDArray[np.float64]) -> NDArray[np.float64]:
        """Fractional voxel index of world points ``(..., 3)``."""
        return (np.asarray(p_zyx) - np.asarray(self.origin)) / np.asarray(self.spacing)

    def to_world(self, idx_zyx: NDArray[np.float64]) -> NDArray[np.float64]:
        """World points (mm) of fractional voxel indices ``(..., 3)``."""
        return np.asarray(self.origin) + np.asarray(idx_zyx) * np.asarray(self.spacing)


def tube_occupancy(
    grid: Grid, p0: NDArray[np.float64], p1: NDArray[np.float64], r0: float, r1: float
) -> tuple[tuple[slice, slice, slice], NDArray[np.float32]] | None:
    """Occupancy of one tapered capsule on its bounding box.

    Args:
        grid: The voxel grid.
        p0: Start point, world mm ``(3,)`` (z, y, x).
        p1: End point, world mm ``(3,)``.
        r0: Radius (mm) at ``p0``.
        r1: Radius (mm) at ``p1``.

    Returns:
        ``(box, occ)`` with ``occ`` float32 of the box's shape in [0, 1], or ``None`` when the
        tube misses the grid.
    """
    sp = np.asarray(grid.spacing)
    rmax = max(r0, r1) + 0.5 * float(sp.max())
    lo = np.floor((np.minimum(p0, p1) - rmax - np.asarray(grid.origin)) / sp).astype(int)
    hi = np.ceil((np.maximum(p0, p1) + rmax - np.asarray(grid.origin)) / sp).astype(int) + 1
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, grid.shape)
    if np.any(hi <= lo):
        return None
    f32 = np.float32
    z = (grid.origin[0] + np.arange(lo[0], hi[0]) * sp[0] - p0[0]).astype(f32)[:, None, None]
    y = (grid.origin[1] + np.arange(lo[1], hi[1]) * sp[1] - p0[1]).astype(f32)[None, :, None]
    x = (grid.origin[2] + np.arange(lo[2], hi[2]) * sp[2] - p0[2]).astype(f32)[None, None, :]
    d = (p1 - p0).astype(np.float32)
    length2 = float(d @ d)
    if length2 < 1e-9:
        t = np.zeros((1, 1, 1), dtype=np.float32)
    else:
        t = np.clip((z * d[0] + y * d[1] + x * d[2]) * f32(1.0 / length2), f32(0.0), f32(1.0))
    vz, vy, vx = z - t * d[0], y - t * d[1], x - t * d[2]
    dist = np.sqrt(vz * vz + vy * vy + vx * vx)
    if sp[0] == sp[1] == sp[2]:
        h: NDArray[np.float32] | np.float32 = f32(sp[0])
    else:  # voxel extent along the surface normal v / |v|
        s2 = (sp * sp).astype(f32)
        h = np.sqrt(vz * vz * s2[0] + vy * vy * s2[1] + vx * vx * s2[2]) / np.maximum(
            dist, f32(1e-6)
        )
        h = np.maximum(h, f32(sp.min()))
    rad = f32(r0) + f32(r1 - r0) * t
    occ = np.clip((rad - dist) / h + f32(0.5), f32(0.0), f32(1.0))
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    return box, occ


def _subdivide(
    p0: NDArray[np.float64],
    p1: NDArray[np.float64],
    r0: NDArray[np.float64],
    r1: NDArray[np.float64],
    labels: NDArray[np.int64],
    voxel: float,
) -> tuple[
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.int64],
]:
    """Cut long thin segments into pieces (same taper) so that their boxes stay small."""
    p0, p1 = np.atleast_2d(p0), np.atleast_2d(p1)
    r0, r1 = np.asarray(r0, dtype=float), np.asarray(r1, dtype=float)
    length = np.linalg.norm(p1 - p0, axis=1)
    max_len = np.maximum(4.0 * np.maximum(r0, r1), 3.0 * voxel) + 3.0
    parts = np.maximum(1, np.ceil(length / max_len)).astype(int)
    if np.all(parts == 1):
        return p0, p1, r0, r1, np.asarray(labels)
    seg = np.repeat(np.arange(len(r0)), parts)
    start = np.concatenate([np.arange(n) / n for n in parts])
    stop = np.concatenate([np.arange(1, n + 1) / n for n in parts])
    d = (p1 - p0)[seg]
    dr = (r1 - r0)[seg]
    return (
        p0[seg] + start[:, None] * d,
        p0[seg] + stop[:, None] * d,
        r0[seg] + start * dr,
        r0[seg] + stop * dr,
        np.asarray(labels)[seg],
    )


def paint_tubes(
    grid: Grid,
    hu: NDArray[np.float32],
    tissue: NDArray[np.uint8],
    p0: NDArray[np.float64],
    p1: NDArray[np.float64],
    r0: NDArray[np.float64],
    r1: NDArray[np.float64],
    value: float,
    label: int | NDArray[np.int64],
    *,
    mode: str = "max",
    within: NDArray[np.uint8] | None = None,
    clear: NDArray[np.uint8] | None = None,
) -> None:
    """Blend tubes into ``hu`` (in place) and label their voxels.

    Args:
        grid: The voxel grid.
        hu: float32 ``(z, y, x)`` HU volume.
        tissue: uint8 ``(z, y, x)`` labels; voxels with occupancy >= 0.5 get ``label``.
        p0: ``(n, 3)`` start points (world mm, z y x).
        p1: ``(n, 3)`` end points.
        r0: ``(n,)`` start radii (mm).
        r1: ``(n,)`` end radii (mm).
        value: HU of the tube's content.
        label: Tissue label, one for all or ``(n,)``.
        mode: ``"max"`` (only raises HU: vessels), ``"min"`` (only lowers: air lumens) or
            ``"over"`` (replaces).
        within: Optional uint8 ``(z, y, x)`` mask; tubes are painted only where it is > 0.
        clear: Optional uint8 ``(z, y, x)`` mask (e.g. lung labels) set to 0 where the tube
            occupies >= 0.5.
    """
    labels = np.broadcast_to(np.asarray(label), (len(r0),))
    p0, p1, r0, r1, labels = _subdivide(p0, p1, r0, r1, labels, float(max(grid.spacing)))
    v = np.float32(value)
    for i in range(len(r0)):
        res = tube_occupancy(grid, p0[i], p1[i], float(r0[i]), float(r1[i]))
        if res is None:
            continue
        box, occ = res
        if within is not None:
            occ = occ * (within[box] > 0)
        sub = hu[box]
        diff = v - sub
        if mode == "max":
            np.maximum(diff, 0.0, out=diff)
        elif mode == "min":
            np.minimum(diff, 0.0, out=diff)
        sub += occ * diff
        full = occ >= 0.5
        tissue[box][full] = labels[i]
        if clear is not None:
            clear[box][full] = 0


__all__ = ["Grid", "paint_tubes", "tube_occupancy"]
