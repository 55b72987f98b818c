"""Bring every loaded CT onto one canonical axial grid, and map label maps back.

The analysis stages assume the array axes ``(z, y, x)`` run cranio-caudal, anterior-posterior
and right-left. Files do not always store them so (NIfTI written RAS, coronal or sagittal
reconstructions, prone or feet-first DICOM), so every loader calls :func:`to_canonical`:

* **Canonical grid**: direction = identity in LPS, i.e. index ``i`` (x) runs towards the
  patient's left, ``j`` (y) towards posterior, ``k`` (z) towards the head.
* **Axis permutation and flips** (any of the 48 signed permutations) are exact: the array is
  transposed / flipped and origin, spacing and direction follow, so every voxel keeps its
  world position and value.
* **Residual obliquity**: after the permutation, the angle between each index axis and its
  LPS axis is measured. Up to :data:`ORIENT_TOLERANCE_DEG` (1 degree: well below what the
  anatomy-based stages notice, and typical of scanner rounding) the exact near-identity
  direction is kept. Up to :data:`MAX_OBLIQUE_DEG` (30 degrees) the image is resampled
  linearly onto an axis-aligned grid (same spacing, bounding box of the stored voxel
  centres, air = -1024 outside) and flagged ``input_resampled_oblique``. Beyond that,
  :class:`ObliqueImageError`.
* When anything changed, ``CTVolume.stored_geometry`` keeps the file's own grid and
  :func:`to_stored_grid` maps label maps back onto it (exact inverse permutation, or
  nearest-neighbour resampling for the oblique case), so written masks overlay the
  user's file voxel for voxel.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import ObliqueImageError
from medsnowball.core.quality import SEVERITY_INFO, QualityFlag
from medsnowball.core.volume import CTVolume, ImageGeometry

__all__ = [
    "MAX_OBLIQUE_DEG",
    "ORIENT_TOLERANCE_DEG",
    "ObliqueImageError",
    "orientation_code",
    "to_canonical",
    "to_stored_grid",
    "to_stored_volume",
]

logger = logging.getLogger(__name__)

#: Largest angle (degrees) between an index axis and its LPS axis that is left as it is.
ORIENT_TOLERANCE_DEG = 1.0
#: Largest angle (degrees) that is resampled onto an axis-aligned grid; beyond: an error.
MAX_OBLIQUE_DEG = 30.0
#: Value of voxels of the resampled grid that lie outside the stored image (air).
OUTSIDE_HU = -1024.0

_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) per LPS axis x, y, z
_PERMUTATIONS = tuple(itertools.permutations(range(3)))


def orientation_code(direction: Any) -> str:
    """Three-letter code of the directions the index axes ``i, j, k`` point to.

    Args:
        direction: 3x3 direction matrix, SimpleITK convention (columns = axes i, j, k).

    Returns:
        E.g. ``"LPS"`` for the identity, ``"RAS"`` for a NIfTI-style flip, ``"PIR"`` for a
        sagittal stack; the same letters SimpleITK's ``DICOMOrient`` uses.
    """
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    out = []
    for c in range(3):
        axis = int(np.argmax(np.abs(d[:, c])))
        out.append(_LETTERS[axis][int(d[axis, c] > 0)])
    return "".join(out)


def _signed_permutation(direction: NDArray[np.float64]) -> tuple[list[int], list[int]]:
    """For each LPS axis ``a``: the index axis ``src[a]`` closest to it and its sign."""
    best = max(_PERMUTATIONS, key=lambda p: sum(abs(direction[a, p[a]]) for a in range(3)))
    src = list(best)
    sign = [1 if direction[a, src[a]] >= 0 else -1 for a in range(3)]
    return src, sign


def _permute_array(array: NDArray[Any], src: list[int], sign: list[int]) -> NDArray[Any]:
    """Reorder ``(k, j, i)`` array axes so new index axis ``a`` is old ``src[a]`` (flipped when
    ``sign[a] < 0``). Numpy axis of index axis ``c`` is ``2 - c``."""
    out = np.transpose(array, [2 - src[2], 2 - src[1], 2 - src[0]])
    flips = tuple(2 - a for a in range(3) if sign[a] < 0)
    return np.flip(out, axis=flips) if flips else out


def _permute_geometry(geom: ImageGeometry, src: list[int], sign: list[int]) -> ImageGeometry:
    """The geometry of :func:`_permute_array`'s output (every voxel keeps its position)."""
    shape_ijk = geom.shape_zyx[::-1]
    spacing_ijk = geom.spacing_xyz
    first_ijk = [0, 0, 0]
    for a in range(3):
        if sign[a] < 0:
            first_ijk[src[a]] = shape_ijk[src[a]] - 1
    origin = geom.index_to_world(first_ijk[::-1])
    direction = np.stack([sign[a] * geom.direction[:, src[a]] for a in range(3)], axis=1)
    return ImageGeometry(
        shape_zyx=tuple(shape_ijk[src[a]] for a in (2, 1, 0)),  # type: ignore[arg-type]
        spacing_zyx=tuple(spacing_ijk[src[a]] for a in (2, 1, 0)),  # type: ignore[arg-type]
        origin_lps=tuple(origin.tolist()),  # type: ignore[arg-type]
        direction=direction,
    )


def _axis_angles_deg(direction: NDArray[np.float64]) -> NDArray[np.float64]:
    """Angle in degrees between index axis ``a`` and LPS axis ``a`` (diagonal assumed > 0)."""
    return np.degrees(np.arccos(np.clip(np.diag(direction), -1.0, 1.0)))


def _sitk_image(array: NDArray[Any], geom: ImageGeometry) -> Any:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(geom.spacing_xyz)
    image.SetOrigin(geom.origin_lps)
    image.SetDirection(tuple(float(v) for v in np.asarray(geom.direction).ravel()))
    return image


def _resample(
    array: NDArray[Any], source: ImageGeometry, target: ImageGeometry, *, nearest: bool
) -> NDArray[Any]:
    """Resample ``array`` (on ``source``) onto ``target``: linear (air outside) or nearest (0)."""
    import SimpleITK as sitk  # noqa: N813

    dtype = array.dtype
    work = array.astype(np.uint8 if dtype == np.bool_ else (dtype if nearest else np.float32))
    ref = _sitk_image(np.zeros(target.shape_zyx, dtype=np.uint8), target)
    out = sitk.Resample(
        _sitk_image(work, source),
        ref,
        sitk.Transform(),
        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
        0.0 if nearest else OUTSIDE_HU,
    )
    result = sitk.GetArrayFromImage(out)
    if nearest:
        return result.astype(dtype, copy=False)
    if np.issubdtype(dtype, np.integer):
        return np.rint(result).astype(dtype)
    return result.astype(dtype, copy=False)


def _axis_aligned_grid(geom: ImageGeometry) -> ImageGeometry:
    """Identity-direction grid covering every voxel centre of ``geom``, with its spacing."""
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in geom.shape_zyx])))
    world = geom.index_to_world(corners)  # (8, 3) x, y, z
    low, high = world.min(axis=0), world.max(axis=0)
    spacing_xyz = np.asarray(geom.spacing_xyz)
    size_xyz = np.floor((high - low) / spacing_xyz + 1e-6).astype(int) + 1
    return ImageGeometry(
        shape_zyx=tuple(int(s) for s in size_xyz[::-1]),  # type: ignore[arg-type]
        spacing_zyx=geom.spacing_zyx,
        origin_lps=tuple(low.tolist()),  # type: ignore[arg-type]
        direction=np.eye(3),
    )


def _reordered_files(files: tuple[str, ...], src: list[int], sign: list[int]) -> tuple[str, ...]:
    """Source files in the new slice order, or ``()`` when slices are no longer the files."""
    if not files or src[2] != 2:
        return ()
    return files[::-1] if sign[2] < 0 else files


def to_canonical(
    volume: CTVolume,
    *,
    tolerance_deg: float = ORIENT_TOLERANCE_DEG,
    max_oblique_deg: float = MAX_OBLIQUE_DEG,
    labels: bool = False,
) -> CTVolume:
    """Return ``volume`` on the canonical axial LPS grid (see the module docstring).

    Args:
        volume: A loaded CT, array ``(z, y, x)`` on the file's own grid.
        tolerance_deg: Residual axis angle (degrees) left as it is.
        max_oblique_deg: Largest residual angle resampled; beyond it the image is refused.
        labels: The array is a label map (mask): oblique resampling uses nearest neighbour
            and 0 outside instead of linear interpolation and air.

    Returns:
        ``volume`` itself when its direction already is the identity (within
        ``tolerance_deg``, no axis swapped or flipped). Otherwise a new volume whose
        ``array`` ``(z', y', x')`` is the permuted / flipped (or resampled) image,
        ``stored_geometry`` the file's grid, and ``quality`` one more info flag
        (``input_reoriented`` or ``input_resampled_oblique``).

    Raises:
        ObliqueImageError: An index axis is more than ``max_oblique_deg`` from the nearest
            LPS axis (the message names the file, the angle and the limit).
    """
    geom = volume.geometry
    src, sign = _signed_permutation(np.asarray(geom.direction))
    permuted = _permute_geometry(geom, src, sign)
    angle = float(np.max(_axis_angles_deg(np.asarray(permuted.direction))))
    code = orientation_code(geom.direction)
    reordered = src != [0, 1, 2] or min(sign) < 0
    if not reordered and angle <= tolerance_deg:
        return volume
    if angle > max_oblique_deg:
        raise ObliqueImageError(
            f"{volume.source or 'image'}: an image axis lies {angle:.1f} degrees from the "
            f"nearest patient (LPS) axis (stored orientation about {code}); medsnowball "
            f"resamples obliquity up to {max_oblique_deg:g} degrees only. Reconstruct or "
            "resample the scan onto an axial (or coronal/sagittal) grid and run it again."
        )
    array = _permute_array(np.asarray(volume.array), src, sign)
    files = _reordered_files(volume.source_files, src, sign)
    if angle > tolerance_deg:
        target = _axis_aligned_grid(permuted)
        array = _resample(array, permuted, target, nearest=labels)
        permuted, files = target, ()
        flag = QualityFlag(
            "input_resampled_oblique",
            f"Image stored obliquely ({angle:.1f} degrees from the nearest axial axes, about "
            f"{code}) was resampled {'(nearest neighbour)' if labels else 'linearly'} onto an "
            "axis-aligned LPS grid for analysis; masks are written back on the stored grid "
            "(nearest neighbour).",
            SEVERITY_INFO,
        )
    else:
        flag = QualityFlag(
            "input_reoriented",
            f"Image stored in {code} orientation{'' if src[2] == 2 else ' (not axial)'} was "
            "reoriented to the canonical axial LPS grid for analysis; masks are written back "
            "on the stored grid.",
            SEVERITY_INFO,
        )
    logger.info("%s: %s", volume.source or "image", flag.message)
    return dataclasses.replace(
        volume,
        array=np.ascontiguousarray(array),
        geometry=permuted,
        source_files=files,
        quality=(*volume.quality, flag),
        stored_geometry=volume.stored_geometry or geom,
    )


def to_stored_grid(
    labels: NDArray[Any], geometry: ImageGeometry, stored: ImageGeometry
) -> NDArray[Any]:
    """Map a label map from the analysed grid back onto the file's stored grid.

    Args:
        labels: Array ``(z, y, x)`` on ``geometry`` (the analysed, canonical grid).
        geometry: The grid ``labels`` lie on.
        stored: The file's own grid (``CTVolume.stored_geometry``).

    Returns:
        Array of ``stored.shape_zyx`` and the dtype of ``labels``: the exact inverse axis
        permutation / flip when the two grids hold the same voxels, else nearest-neighbour
        resampling (0 outside the analysed grid).

    Raises:
        ValueError: ``labels`` does not have the shape of ``geometry``.
    """
    arr = np.asarray(labels)
    if arr.shape != geometry.shape_zyx:
        raise ValueError(
            f"Label map of shape {arr.shape} does not lie on the analysed grid "
            f"{geometry.shape_zyx}; expected labels computed on that grid."
        )
    inverse = _exact_inverse(geometry, stored)
    if inverse is not None:
        return np.ascontiguousarray(_permute_array(arr, *inverse))
    return _resample(arr, geometry, stored, nearest=True)


def _exact_inverse(
    geometry: ImageGeometry, stored: ImageGeometry
) -> tuple[list[int], list[int]] | None:
    """``(src, sign)`` taking ``geometry``'s voxels exactly onto ``stored``, or None."""
    # Rows: stored axes, columns: analysed axes; stored axis c is analysed axis src[c].
    relation = np.asarray(stored.direction).T @ np.asarray(geometry.direction)
    src, sign = _signed_permutation(relation)
    return (src, sign) if _permute_geometry(geometry, src, sign) == stored else None


def to_stored_volume(volume: CTVolume) -> CTVolume:
    """Inverse of :func:`to_canonical`: the volume on the grid its file stores.

    Args:
        volume: A volume from a loader (``stored_geometry`` set when it was reoriented).

    Returns:
        ``volume`` itself when ``stored_geometry`` is None; otherwise a copy whose array
        ``(z, y, x)`` lies on ``stored_geometry`` (exact inverse permutation, or nearest
        neighbour after oblique resampling) with ``source_files`` in the stored slice
        order (empty when the slices cannot be matched) and ``stored_geometry`` None.
    """
    stored = volume.stored_geometry
    if stored is None:
        return volume
    inverse = _exact_inverse(volume.geometry, stored)
    files = _reordered_files(volume.source_files, *inverse) if inverse is not None else ()
    return dataclasses.replace(
        volume,
        array=to_stored_grid(volume.array, volume.geometry, stored),
        geometry=stored,
        source_files=files,
        stored_geometry=None,
    )
