"""Grid helpers and signed-distance shapes drawn inside bounding boxes.

All shapes are evaluated only on the voxels of their bounding box, with coordinates
built by broadcasting three 1-D axes (no full-size coordinate arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid (identity direction) in LPS millimetres.

    Attributes:
        shape_zyx: Voxels along z, y, x.
        spacing_zyx: Voxel size (mm) along z, y, x.
        origin_lps: World (x, y, z) of the centre of voxel (0, 0, 0).
    """

    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    origin_lps: tuple[float, float, float]

    @property
    def origin_zyx(self) -> NDArray[np.float64]:
        """Origin reordered (z, y, x)."""
        return np.array(self.origin_lps[::-1], dtype=np.float64)

    def axis(self, dim: int) -> NDArray[np.float32]:
        """World coordinates (mm) of the voxel centres along array axis ``dim`` (0=z)."""
        o = self.origin_zyx[dim]
        return (o + np.arange(self.shape_zyx[dim]) * self.spacing_zyx[dim]).astype(np.float32)

    def to_index(self, p_zyx: NDArray[np.float64]) -> NDArray[np.float64]:
        """World mm ``(..., 3)`` in (z, y, x) order -> fractional voxel index (z, y, x)."""
        return (np.asarray(p_zyx, dtype=np.float64) - self.origin_zyx) / np.asarray(
            self.spacing_zyx
        )

    def to_world(self, idx_zyx: NDArray[np.float64]) -> NDArray[np.float64]:
        """Fractional voxel index ``(..., 3)`` (z, y, x) -> world mm in (z, y, x) order."""
        return np.asarray(idx_zyx, dtype=np.float64) * np.asarray(self.spacing_zyx) + (
            self.origin_zyx
        )

    def box(self, lo_zyx: NDArray[np.float64], hi_zyx: NDArray[np.float64]) -> Box | None:
        """Slices of the voxels whose centres lie in the world box ``[lo, hi]`` (z, y, x mm).

        Returns:
            The clipped slices, or ``None`` when the box misses the grid.
        """
        i0 = np.ceil(self.to_index(lo_zyx) - 1e-6).astype(int)
        i1 = np.floor(self.to_index(hi_zyx) + 1e-6).astype(int) + 1
        i0 = np.maximum(i0, 0)
        i1 = np.minimum(i1, np.asarray(self.shape_zyx))
        if np.any(i1 <= i0):
            return None
        return (slice(i0[0], i1[0]), slice(i0[1], i1[1]), slice(i0[2], i1[2]))

    def box_axes(
        self, box: Box
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """World coordinates of a box's voxel centres, shaped for broadcasting.

        Returns:
            ``z (n, 1, 1)``, ``y (1, m, 1)``, ``x (1, 1, l)`` in mm.
        """
        z = self.axis(0)[box[0]][:, None, None]
        y = self.axis(1)[box[1]][None, :, None]
        x = self.axis(2)[box[2]][None, None, :]
        return z, y, x


def capsule_sdf(
    grid: Grid,
    p0_zyx: NDArray[np.float64],
    p1_zyx: NDArray[np.float64],
    r0: float,
    r1: float,
    pad: float = 0.0,
    with_normal_size: bool = False,
) -> tuple[Box, NDArray[np.float32]] | tuple[Box, NDArray[np.float32], NDArray[np.float32]] | None:
    """Signed distance (mm) to a tapered tube from ``p0`` to ``p1`` with round ends.

    Args:
        grid: Voxel grid.
        p0_zyx: Start point, world mm (z, y, x).
        p1_zyx: End point, world mm (z, y, x).
        r0: Radius at ``p0`` (mm).
        r1: Radius at ``p1`` (mm).
        pad: Extra margin (mm) of the evaluated box beyond the surface.
        with_normal_size: Also return the voxel extent (mm) along the surface normal at
            each voxel (for anti-aliasing: ``frac = clip(0.5 - sdf / h, 0, 1)``).

    Returns:
        ``(box, sdf)`` (or ``(box, sdf, h)``) with ``sdf`` float32 of the box's shape
        (negative inside), or ``None`` when the tube misses the grid.
    """
    p0 = np.asarray(p0_zyx, dtype=np.float64)
    p1 = np.asarray(p1_zyx, dtype=np.float64)
    rmax = max(r0, r1) + pad
    box = grid.box(np.minimum(p0, p1) - rmax, np.maximum(p0, p1) + rmax)
    if box is None:
        return None
    z, y, x = grid.box_axes(box)
    d = (p1 - p0).astype(np.float32)
    length2 = float(np.dot(d, d))
    dz0, dy0, dx0 = z - np.float32(p0[0]), y - np.float32(p0[1]), x - np.float32(p0[2])
    if length2 < 1e-9:
        t = np.zeros((1, 1, 1), dtype=np.float32)
    else:
        t = (dz0 * d[0] + dy0 * d[1] + dx0 * d[2]) * np.float32(1.0 / length2)
        np.clip(t, 0.0, 1.0, out=t)
    ez = dz0 - t * d[0]
    ey = dy0 - t * d[1]
    ex = dx0 - t * d[2]
    dist = np.sqrt(ez * ez + ey * ey + ex * ex)
    if with_normal_size:
        sp = np.asarray(grid.spacing_zyx, dtype=np.float32)
        h = np.sqrt((ez * sp[0]) ** 2 + (ey * sp[1]) ** 2 + (ex * sp[2]) ** 2)
        h /= dist + np.float32(1e-6)
        np.maximum(h, np.float32(sp.min()), out=h)
    dist -= np.float32(r0) + t * np.float32(r1 - r0)
    if with_normal_size:
        return box, dist.astype(np.float32, copy=False), h
    return box, dist.astype(np.float32, copy=False)


def ellipsoid_box(
    grid: Grid, center_zyx: NDArray[np.float64], radius_mm: float
) -> tuple[Box, NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]] | None:
    """Box around a ball and the world offsets of its voxels from the centre.

    Returns:
        ``(box, dz, dy, dx)`` with broadcastable offset arrays (mm), or ``None``.
    """
    c = np.asarray(center_zyx, dtype=np.float64)
    box = grid.box(c - radius_mm, c + radius_mm)
    if box is None:
        return None
    z, y, x = grid.box_axes(box)
    return box, z - np.float32(c[0]), y - np.float32(c[1]), x - np.float32(c[2])


__all__ = ["Box", "Grid", "capsule_sdf", "ellipsoid_box"]
