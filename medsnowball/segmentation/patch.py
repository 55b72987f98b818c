"""Patches around a candidate and the near-isotropic working grid of the segmentation.

Thick slices are refined along z by an integer factor ``f`` with linear interpolation, so
that morphology (balls in mm) behaves the same at 0.6 and at 2.5 mm slice spacing. Every
``f``-th working slice *is* a source slice, so going back to the source grid is exact:
take those slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.volume import CTVolume

#: Refine z only when slices are this much thicker than the in-plane pixels.
REFINE_RATIO = 1.4
#: Largest z refinement factor.
MAX_REFINE = 5


@dataclass(frozen=True)
class Patch:
    """A box of the source grid and its working-grid version.

    Attributes:
        lo_zyx: First source voxel of the box (inclusive).
        hi_zyx: Last source voxel + 1 (exclusive).
        factor_z: z refinement factor ``f`` (1: none).
        spacing_zyx: Working-grid voxel size in mm.
        hu: Working-grid HU values ``(z, y, x)``, float32.
        clipped: Per axis and side ``((z_lo, z_hi), (y_lo, y_hi), (x_lo, x_hi))``: whether
            the box was cut by the volume border (it cannot grow there).
    """

    lo_zyx: tuple[int, int, int]
    hi_zyx: tuple[int, int, int]
    factor_z: int
    spacing_zyx: tuple[float, float, float]
    hu: NDArray[np.float32]
    clipped: tuple[tuple[bool, bool], tuple[bool, bool], tuple[bool, bool]]

    def source_to_work(self, zyx: NDArray[np.float64] | tuple[float, ...]) -> NDArray[np.float64]:
        """Fractional source index (z, y, x) -> working-grid fractional index."""
        p = np.asarray(zyx, dtype=np.float64) - np.asarray(self.lo_zyx, dtype=np.float64)
        return p * np.array([self.factor_z, 1.0, 1.0])

    def to_source(self, work_mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Working-grid mask -> mask on the source box (the source slices of the grid)."""
        return np.asarray(work_mask[:: self.factor_z])


def refine_factor(spacing_zyx: tuple[float, float, float]) -> int:
    """z refinement factor for a source spacing (1 when slices are not thick)."""
    inplane = min(spacing_zyx[1], spacing_zyx[2])
    ratio = spacing_zyx[0] / inplane
    if ratio < REFINE_RATIO:
        return 1
    return int(min(MAX_REFINE, max(1, round(ratio))))


def upsample_z(a: NDArray[np.floating], f: int) -> NDArray[np.float32]:
    """Linear interpolation along axis 0 with ``f - 1`` new slices between neighbours.

    Args:
        a: Array ``(z, y, x)``.
        f: Factor; output has ``(z - 1) * f + 1`` slices, slice ``k * f`` equals ``a[k]``.

    Returns:
        float32 array.
    """
    a = np.asarray(a, dtype=np.float32)
    if f <= 1 or a.shape[0] < 2:
        return a.copy()
    nz = (a.shape[0] - 1) * f + 1
    out = np.empty((nz, *a.shape[1:]), dtype=np.float32)
    out[::f] = a
    lower, upper = a[:-1], a[1:]
    for j in range(1, f):
        t = j / f
        out[j::f] = (1.0 - t) * lower + t * upper
    return out


def upsample_z_nearest(m: NDArray[np.bool_], f: int) -> NDArray[np.bool_]:
    """Nearest-slice refinement of a mask (same slice layout as :func:`upsample_z`)."""
    if f <= 1 or m.shape[0] < 2:
        return np.asarray(m, dtype=bool).copy()
    nz = (m.shape[0] - 1) * f + 1
    src = np.rint(np.arange(nz) / f).astype(int)
    return np.asarray(m[src], dtype=bool)


def extract_patch(
    volume: CTVolume, center_zyx: tuple[float, float, float], half_mm: float
) -> Patch:
    """Cut a box of ``+- half_mm`` around ``center_zyx`` and refine it along z.

    Args:
        volume: The CT.
        center_zyx: Fractional source index of the box centre.
        half_mm: Half the box edge in mm.

    Returns:
        The patch (clamped to the volume).
    """
    spacing = volume.spacing_zyx
    shape = volume.shape
    lo, hi, clipped = [], [], []
    for c, s, n in zip(center_zyx, spacing, shape, strict=True):
        r = int(np.ceil(half_mm / s))
        a, b = int(np.floor(c)) - r, int(np.ceil(c)) + r + 1
        clipped.append((a < 0, b > n))
        lo.append(max(0, a))
        hi.append(min(n, b))
    hu = np.asarray(volume.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float32)
    f = refine_factor(spacing)
    work = upsample_z(hu, f)
    wspacing = (spacing[0] / f, spacing[1], spacing[2])
    return Patch(
        lo_zyx=(lo[0], lo[1], lo[2]),
        hi_zyx=(hi[0], hi[1], hi[2]),
        factor_z=f,
        spacing_zyx=wspacing,
        hu=work,
        clipped=(clipped[0], clipped[1], clipped[2]),
    )


__all__ = [
    "MAX_REFINE",
    "REFINE_RATIO",
    "Patch",
    "extract_patch",
    "refine_factor",
    "upsample_z",
    "upsample_z_nearest",
]
