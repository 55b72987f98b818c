"""Small morphology helpers shared by the lung and detection code (anisotropic grids)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage


def disk_structure(radius_mm: float, spacing_yx: tuple[float, float]) -> NDArray[np.bool_]:
    """In-plane disk as a 3-D structuring element of depth 1.

    Args:
        radius_mm: Disk radius in mm.
        spacing_yx: In-plane voxel size (y, x) in mm.

    Returns:
        Boolean array ``(1, 2 ry + 1, 2 rx + 1)``; at least the 3x3 cross.
    """
    ry = max(1, int(np.floor(radius_mm / spacing_yx[0])))
    rx = max(1, int(np.floor(radius_mm / spacing_yx[1])))
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    d = (yy * spacing_yx[0] / radius_mm) ** 2 + (xx * spacing_yx[1] / radius_mm) ** 2
    disk = d <= 1.0 + 1e-6
    disk[ry, :] |= np.abs(np.arange(-rx, rx + 1)) <= 1
    disk[:, rx] |= np.abs(np.arange(-ry, ry + 1)) <= 1
    return disk[None]


def fill_holes_per_slice(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """2-D hole filling of every axial slice.

    The background is labelled with in-plane connectivity in one pass; background regions
    that touch the in-plane border of their slice stay background, all others are holes.

    Args:
        mask: Boolean array ``(z, y, x)``.

    Returns:
        New boolean array with every enclosed background region of each slice set.
    """
    struct = np.zeros((3, 3, 3), bool)
    struct[1] = ndimage.generate_binary_structure(2, 1)
    lab, n = ndimage.label(~mask, structure=struct)
    if n == 0:
        return mask.copy()
    border = np.zeros(n + 1, bool)
    for face in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        border[np.unique(face)] = True
    border[0] = True  # label 0 is the mask itself
    return ~border[lab] | mask


def largest_components(
    mask: NDArray[np.bool_], n: int = 1, structure: NDArray[np.bool_] | None = None
) -> NDArray[np.bool_]:
    """Keep the ``n`` largest connected components of a mask.

    Args:
        mask: Boolean array of any dimension.
        n: Number of components to keep.
        structure: Connectivity (default: faces only).

    Returns:
        Boolean array of the same shape.
    """
    lab, count = ndimage.label(mask, structure=structure)
    if count <= n:
        return lab > 0
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    keep = np.argsort(sizes)[::-1][:n]
    return np.isin(lab, keep)


def closing_edt(
    mask: NDArray[np.bool_],
    radius_mm: float,
    spacing_zyx: tuple[float, float, float],
) -> NDArray[np.bool_]:
    """Morphological closing with a ball of ``radius_mm`` via two distance transforms.

    Works on the bounding box of ``mask`` padded by the radius, so it is cheap for compact
    objects. Beyond the in-plane array border the padding is background; beyond the first
    and last slice the mask is continued by repeating that slice (the anatomy goes on past
    the scanned range). So the closing never grows the object towards the array border,
    and a thin volume (two slices) of a lung cut by the scan range is closed in-plane.

    Args:
        mask: Boolean array ``(z, y, x)``.
        radius_mm: Ball radius in mm.
        spacing_zyx: Voxel size in mm.

    Returns:
        Closed boolean array of the same shape (a superset of ``mask``).
    """
    out = mask.copy()
    if not mask.any():
        return out
    idx = np.nonzero(mask)
    sl = []
    pad = []
    for axis in range(3):
        m = int(np.ceil(radius_mm / spacing_zyx[axis])) + 2
        lo_want = int(idx[axis].min()) - m
        hi_want = int(idx[axis].max()) + m + 1
        lo, hi = max(0, lo_want), min(mask.shape[axis], hi_want)
        sl.append(slice(lo, hi))
        pad.append((lo - lo_want, hi_want - hi))
    box = np.pad(mask[tuple(sl)], [(0, 0), pad[1], pad[2]], mode="constant")
    box = np.pad(box, [pad[0], (0, 0), (0, 0)], mode="edge")
    dil = ndimage.distance_transform_edt(~box, sampling=spacing_zyx) <= radius_mm
    closed = ndimage.distance_transform_edt(dil, sampling=spacing_zyx) > radius_mm
    inner = tuple(slice(p0, closed.shape[a] - p1) for a, (p0, p1) in enumerate(pad))
    out[tuple(sl)] |= closed[inner]
    return out


__all__ = ["closing_edt", "disk_structure", "fill_holes_per_slice", "largest_components"]
