"""Multi-scale blob enhancement: scale-normalised Laplacian-of-Gaussian maxima + Hessian shape.

For each scale ``sigma`` (mm) the iso lung image is smoothed with a Gaussian (on a pyramid
level whose voxel is at most ``sigma / 1.4`` mm, so large scales are cheap), the
scale-normalised LoG ``-sigma^2 * trace(H)`` is computed with second differences, and its
3x3x3 local maxima inside the lung mask above ``min_response`` HU become blob points. At each
point the full Hessian is evaluated and its eigenvalues (scale-normalised, sorted by
magnitude ``|l1| >= |l2| >= |l3|``) describe the local shape: a blob has three negative
eigenvalues of similar size, a vessel (tube) two, a plate (fissure, pleura) one.
A ball of radius ``R`` answers most strongly at ``sigma ~ R / sqrt(3)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

#: Scales (Gaussian sigma, mm): blob diameters of about 3.5 to 28 mm.
SCALES_MM: tuple[float, ...] = (1.0, 1.41, 2.0, 2.83, 4.0, 5.66, 8.0)
#: Smallest scale-normalised LoG response (HU) of a blob point.
MIN_RESPONSE_HU = 40.0


@dataclass(frozen=True)
class BlobPoints:
    """Blob points of all scales.

    Attributes:
        zyx: Iso-grid indices ``(n, 3)`` (float).
        sigma_mm: Scale of each point ``(n,)``.
        response: Scale-normalised LoG ``(n,)`` in HU.
        eig: Scale-normalised Hessian eigenvalues ``(n, 3)``, ``|l1| >= |l2| >= |l3|``.
        smoothed_hu: Gaussian-smoothed HU at the point ``(n,)``.
    """

    zyx: NDArray[np.float64]
    sigma_mm: NDArray[np.float64]
    response: NDArray[np.float64]
    eig: NDArray[np.float64]
    smoothed_hu: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.sigma_mm.size)

    def take(self, index: NDArray[np.intp]) -> BlobPoints:
        """Subset by integer or boolean index."""
        return BlobPoints(
            self.zyx[index],
            self.sigma_mm[index],
            self.response[index],
            self.eig[index],
            self.smoothed_hu[index],
        )

    @staticmethod
    def concat(parts: list[BlobPoints]) -> BlobPoints:
        """Concatenate point sets."""
        if not parts:
            return BlobPoints(
                np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros((0, 3)), np.zeros(0)
            )
        return BlobPoints(
            np.concatenate([p.zyx for p in parts]),
            np.concatenate([p.sigma_mm for p in parts]),
            np.concatenate([p.response for p in parts]),
            np.concatenate([p.eig for p in parts]),
            np.concatenate([p.smoothed_hu for p in parts]),
        )


def block_mean(a: NDArray[np.floating] | NDArray[np.bool_], f: int) -> NDArray[np.float32]:
    """Block mean by factor ``f`` along every axis (partial edge blocks padded by edge)."""
    if f == 1:
        return np.asarray(a, dtype=np.float32)
    pad = [(0, (-n) % f) for n in a.shape]
    b = np.pad(np.asarray(a, dtype=np.float32), pad, mode="edge")
    nz, ny, nx = (s // f for s in b.shape)
    return b.reshape(nz, f, ny, f, nx, f).mean(axis=(1, 3, 5))


def _second_difference_sum(g: NDArray[np.float32]) -> NDArray[np.float32]:
    """Sum of the three axial second differences (zero on borders and thin axes)."""
    out = np.zeros_like(g)
    for axis in range(3):
        if g.shape[axis] < 3:
            continue
        lo = [slice(None)] * 3
        mid = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], mid[axis], hi[axis] = slice(0, -2), slice(1, -1), slice(2, None)
        out[tuple(mid)] += g[tuple(hi)]
        out[tuple(mid)] += g[tuple(lo)]
        out[tuple(mid)] -= 2.0 * g[tuple(mid)]
    return out


def hessian_at(g: NDArray[np.float32], pts: NDArray[np.intp]) -> NDArray[np.float64]:
    """Finite-difference Hessian of ``g`` at integer points ``(n, 3)`` -> ``(n, 3, 3)``.

    Derivatives along an axis shorter than 3 voxels are zero.
    """
    shape = np.asarray(g.shape)
    n = pts.shape[0]
    h = np.zeros((n, 3, 3))
    if n == 0:
        return h
    valid = shape >= 3
    p = np.clip(pts, 1, np.maximum(shape - 2, 0))
    unit = np.eye(3, dtype=np.intp)

    def at(q: NDArray[np.intp]) -> NDArray[np.float64]:
        q = np.clip(q, 0, shape - 1)
        return g[q[:, 0], q[:, 1], q[:, 2]].astype(np.float64)

    c = at(p)
    for a in range(3):
        if not valid[a]:
            continue
        h[:, a, a] = at(p + unit[a]) + at(p - unit[a]) - 2.0 * c
        for b in range(a + 1, 3):
            if not valid[b]:
                continue
            v = (
                at(p + unit[a] + unit[b])
                - at(p + unit[a] - unit[b])
                - at(p - unit[a] + unit[b])
                + at(p - unit[a] - unit[b])
            ) / 4.0
            h[:, a, b] = v
            h[:, b, a] = v
    return h


def sorted_eigenvalues(h: NDArray[np.float64]) -> NDArray[np.float64]:
    """Eigenvalues of symmetric ``(n, 3, 3)`` matrices sorted by decreasing magnitude."""
    if h.shape[0] == 0:
        return np.zeros((0, 3))
    ev: NDArray[np.float64] = np.asarray(np.linalg.eigvalsh(h), dtype=np.float64)
    order = np.argsort(-np.abs(ev), axis=1)
    return np.take_along_axis(ev, order, axis=1)


def level_for(sigma_mm: float, spacing_mm: float) -> int:
    """Pyramid level (block factor) on which scale ``sigma_mm`` is computed."""
    f = 1
    while sigma_mm / (spacing_mm * f * 2) >= 1.4:
        f *= 2
    return f


def multiscale_blobs(
    image: NDArray[np.float32],
    mask: NDArray[np.bool_],
    spacing_mm: float,
    scales_mm: tuple[float, ...] = SCALES_MM,
    min_response: float = MIN_RESPONSE_HU,
) -> BlobPoints:
    """Blob points of an isotropic image at several scales.

    Args:
        image: Isotropic HU image ``(z, y, x)`` (non-lung voxels already blanked).
        mask: Where points may lie ``(z, y, x)``.
        spacing_mm: The image's isotropic voxel size.
        scales_mm: Gaussian scales in mm.
        min_response: Smallest scale-normalised LoG response to keep.

    Returns:
        The points of all scales, in iso-grid index coordinates.
    """
    pyramid: dict[int, tuple[NDArray[np.float32], NDArray[np.bool_]]] = {}
    parts = []
    for sigma in scales_mm:
        f = level_for(sigma, spacing_mm)
        if f not in pyramid:
            pyramid[f] = (block_mean(image, f), block_mean(mask, f) >= 0.5)
        img, msk = pyramid[f]
        s_vox = sigma / (spacing_mm * f)
        sig = [s_vox if n >= 3 else 0.0 for n in img.shape]
        g = ndimage.gaussian_filter(img, sig, truncate=3.0, mode="nearest")
        resp = _second_difference_sum(g)
        resp *= -(s_vox**2)
        peaks = ndimage.maximum_filter(resp, size=3, mode="nearest") == resp
        peaks &= resp > min_response
        peaks &= msk
        pts = np.argwhere(peaks)
        if pts.size == 0:
            continue
        h = hessian_at(g, pts) * (s_vox**2)
        eig = sorted_eigenvalues(h)
        zyx = pts * f + (f - 1) / 2.0
        parts.append(
            BlobPoints(
                zyx=zyx.astype(np.float64),
                sigma_mm=np.full(len(pts), sigma),
                response=resp[tuple(pts.T)].astype(np.float64),
                eig=eig,
                smoothed_hu=g[tuple(pts.T)].astype(np.float64),
            )
        )
    return BlobPoints.concat(parts)


__all__ = [
    "MIN_RESPONSE_HU",
    "SCALES_MM",
    "BlobPoints",
    "block_mean",
    "hessian_at",
    "level_for",
    "multiscale_blobs",
    "sorted_eigenvalues",
]
