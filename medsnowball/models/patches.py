"""Cut candidate-centred patches from a CT at a model's voxel spacing, and map back.

Patches are axis-aligned with the source array's index axes (``z, y, x``) and sampled
with trilinear interpolation (``torch.nn.functional.grid_sample``) so that every model
sees the same physical scale whatever the scan's slice thickness. Outside the image the
patch holds ``hu_min`` (air).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medsnowball.models.config import PatchSpec


def normalize_hu(array: ArrayLike, spec: PatchSpec) -> NDArray[np.float32]:
    """Map HU linearly from ``[spec.hu_min, spec.hu_max]`` to ``[0, 1]``, clipped."""
    a = np.asarray(array, dtype=np.float32)
    out = (a - np.float32(spec.hu_min)) / np.float32(spec.hu_max - spec.hu_min)
    return np.clip(out, 0.0, 1.0)


def _axis_ratios(source_spacing_zyx: Sequence[float], spec: PatchSpec) -> NDArray[np.float64]:
    return np.asarray(spec.spacing_zyx, dtype=np.float64) / np.asarray(
        source_spacing_zyx, dtype=np.float64
    )


def sample_positions(
    center_zyx: ArrayLike, source_spacing_zyx: Sequence[float], spec: PatchSpec
) -> list[NDArray[np.float64]]:
    """Source-grid fractional indices of the patch voxels along each axis.

    Args:
        center_zyx: Patch centre, fractional index ``(z, y, x)`` on the source grid.
        source_spacing_zyx: Source voxel size in mm.
        spec: Patch contract.

    Returns:
        Three 1-D arrays (z, y, x) of lengths ``spec.size_zyx``.
    """
    c = np.asarray(center_zyx, dtype=np.float64)
    ratio = _axis_ratios(source_spacing_zyx, spec)
    return [
        c[a] + (np.arange(n, dtype=np.float64) - (n - 1) / 2.0) * ratio[a]
        for a, n in enumerate(spec.size_zyx)
    ]


def extract_patches(
    array: NDArray[Any],
    source_spacing_zyx: Sequence[float],
    centers_zyx: ArrayLike,
    spec: PatchSpec,
    batch_size: int = 64,
) -> NDArray[np.float32]:
    """Extract normalised patches around many centres.

    Args:
        array: HU volume ``(Z, Y, X)``.
        source_spacing_zyx: Its voxel size in mm ``(z, y, x)``.
        centers_zyx: ``(N, 3)`` fractional voxel indices.
        spec: Patch size, spacing and HU window.
        batch_size: Patches resampled per ``grid_sample`` call (bounds memory).

    Returns:
        float32 ``(N, *spec.size_zyx)`` in [0, 1].
    """
    import torch
    from torch.nn import functional

    centers = np.asarray(centers_zyx, dtype=np.float64).reshape(-1, 3)
    n_out = spec.size_zyx
    out = np.empty((len(centers), *n_out), dtype=np.float32)
    if len(centers) == 0:
        return out
    ratio = _axis_ratios(source_spacing_zyx, spec)
    crop_len = [math.ceil((n - 1) * r) + 3 for n, r in zip(n_out, ratio, strict=True)]
    shape = np.asarray(array.shape)
    pad_value = np.float32(0.0)  # normalised hu_min
    for b0 in range(0, len(centers), max(1, batch_size)):
        chunk = centers[b0 : b0 + batch_size]
        crops = np.full((len(chunk), *crop_len), pad_value, dtype=np.float32)
        grids = np.empty((len(chunk), *n_out, 3), dtype=np.float32)
        for i, c in enumerate(chunk):
            pos = sample_positions(c, source_spacing_zyx, spec)
            start = np.array([math.floor(p[0]) - 1 for p in pos])
            lo = np.maximum(start, 0)
            hi = np.minimum(start + np.asarray(crop_len), shape)
            if np.all(hi > lo):
                src = array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
                d = lo - start
                e = d + np.asarray(src.shape)
                crops[i, d[0] : e[0], d[1] : e[1], d[2] : e[2]] = normalize_hu(src, spec)
            norm = [
                2.0 * (p - s) / (L - 1) - 1.0 for p, s, L in zip(pos, start, crop_len, strict=True)
            ]
            zz, yy, xx = np.meshgrid(*norm, indexing="ij")
            grids[i, ..., 0] = xx
            grids[i, ..., 1] = yy
            grids[i, ..., 2] = zz
        with torch.no_grad():
            res = functional.grid_sample(
                torch.from_numpy(crops)[:, None],
                torch.from_numpy(grids),
                mode="bilinear",
                padding_mode="border",
                align_corners=True,
            )
        out[b0 : b0 + len(chunk)] = res[:, 0].numpy()
    return out


def patch_to_source(
    patch: NDArray[Any],
    center_zyx: ArrayLike,
    source_spacing_zyx: Sequence[float],
    source_shape_zyx: Sequence[int],
    spec: PatchSpec,
) -> tuple[NDArray[np.float32], tuple[int, int, int]]:
    """Resample a patch-grid map (e.g. a probability) back onto the source grid.

    Args:
        patch: ``spec.size_zyx`` array on the patch grid centred on ``center_zyx``.
        center_zyx: The centre used by :func:`extract_patches`.
        source_spacing_zyx: Source voxel size in mm.
        source_shape_zyx: Source array shape (the result is clipped to it).
        spec: Patch contract.

    Returns:
        ``(values, offset_zyx)``: float32 values on the source voxels covered by the
        patch (trilinear), and the index of its first voxel in the full volume.
    """
    import torch
    from torch.nn import functional

    pos = sample_positions(center_zyx, source_spacing_zyx, spec)
    lo = [max(0, math.ceil(p[0])) for p in pos]
    hi = [min(int(s), math.floor(p[-1]) + 1) for p, s in zip(pos, source_shape_zyx, strict=True)]
    size = [max(0, h - l) for l, h in zip(lo, hi, strict=True)]
    if min(size) == 0:
        return np.zeros(size, dtype=np.float32), (lo[0], lo[1], lo[2])
    # source index q -> patch coordinate t = (q - p0) / step, normalised to [-1, 1]
    norm = []
    for a, n in enumerate(spec.size_zyx):
        q = np.arange(lo[a], hi[a], dtype=np.float64)
        step = pos[a][1] - pos[a][0] if n > 1 else 1.0
        t = (q - pos[a][0]) / step
        norm.append(2.0 * t / (n - 1) - 1.0)
    zz, yy, xx = np.meshgrid(*norm, indexing="ij")
    grid = np.stack([xx, yy, zz], axis=-1).astype(np.float32)[None]
    with torch.no_grad():
        res = functional.grid_sample(
            torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32))[None, None],
            torch.from_numpy(grid),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
    return res[0, 0].numpy(), (lo[0], lo[1], lo[2])


__all__ = ["extract_patches", "normalize_hu", "patch_to_source", "sample_positions"]
