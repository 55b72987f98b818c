"""Isotropic working image of the lungs for blob filtering.

The lungs' bounding box is resampled (separable linear interpolation) onto an isotropic
grid after everything outside the lung mask has been replaced by the lungs' own parenchyma
HU (median of the aerated lung). The chest wall, mediastinum and
diaphragm thereby vanish from the image: a juxtapleural nodule, which the lung mask keeps
inside, becomes an isolated blob, and the pleural surface leaves no bright plate behind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.volume import CTVolume, ImageGeometry

#: Voxel size (mm) of the isotropic working image.
ISO_SPACING_MM = 1.0
#: Margin (mm) around the lungs' bounding box.
BOX_MARGIN_MM = 6.0
#: Parenchyma HU used when the lungs hold no clear parenchyma voxel.
DEFAULT_PARENCHYMA_HU = -850.0


def _interp_axis(
    a: NDArray[np.float32], axis: int, pos: NDArray[np.float64]
) -> NDArray[np.float32]:
    """Linear interpolation of ``a`` along ``axis`` at fractional positions ``pos``."""
    n = a.shape[axis]
    pos = np.clip(pos, 0.0, n - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = -1
    w = w.reshape(shape)
    a_lo = np.take(a, lo, axis=axis)
    a_hi = np.take(a, hi, axis=axis)
    a_lo *= 1.0 - w
    a_hi *= w
    a_lo += a_hi
    return a_lo


def resample_linear(
    array: NDArray[np.floating],
    positions_zyx: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
) -> NDArray[np.float32]:
    """Separable trilinear resampling on a rectilinear set of fractional indices.

    Args:
        array: Input ``(z, y, x)``.
        positions_zyx: Fractional input indices for each output row along z, y, x.

    Returns:
        float32 array of shape ``(len(pz), len(py), len(px))``.
    """
    out = np.asarray(array, dtype=np.float32)
    ratios = [len(p) / max(1, s) for p, s in zip(positions_zyx, out.shape, strict=True)]
    for axis in np.argsort(ratios):  # shrink first, grow last
        out = _interp_axis(out, int(axis), positions_zyx[int(axis)])
    return out


@dataclass(frozen=True, eq=False)
class IsoLungImage:
    """The lungs on an isotropic grid.

    Attributes:
        image: float32 HU ``(z, y, x)``, outside the lungs replaced by ``parenchyma_hu``.
        mask: Boolean lung mask ``(z, y, x)`` on the same grid.
        geometry: The isotropic grid (same direction as the source).
        source: Geometry of the source CT.
        parenchyma_hu: Median HU of aerated lung.
    """

    image: NDArray[np.float32]
    mask: NDArray[np.bool_]
    geometry: ImageGeometry
    source: ImageGeometry
    parenchyma_hu: float

    def to_source_index(self, zyx: NDArray[np.floating]) -> NDArray[np.float64]:
        """Map iso-grid indices ``(..., 3)`` to fractional source indices ``(..., 3)``."""
        return self.source.world_to_index(self.geometry.index_to_world(zyx))


def build_iso_lung_image(
    volume: CTVolume,
    lung_mask: NDArray[np.bool_],
    spacing_mm: float = ISO_SPACING_MM,
    margin_mm: float = BOX_MARGIN_MM,
) -> IsoLungImage | None:
    """Resample the lungs' bounding box to an isotropic grid and blank the non-lung voxels.

    Args:
        volume: Source CT.
        lung_mask: Boolean lung mask on the source grid ``(z, y, x)``.
        spacing_mm: Isotropic voxel size.
        margin_mm: Box margin around the lungs.

    Returns:
        The iso image, or ``None`` when the mask is empty.
    """
    if not lung_mask.any():
        return None
    src = volume.geometry
    spacing = np.asarray(src.spacing_zyx)
    per_axis = [
        np.nonzero(lung_mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)
    ]
    lo = np.array([p.min() for p in per_axis]) - np.ceil(margin_mm / spacing).astype(int)
    hi = np.array([p.max() for p in per_axis]) + np.ceil(margin_mm / spacing).astype(int)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.asarray(src.shape_zyx) - 1)
    extent_mm = (hi - lo) * spacing
    n_out = np.maximum(1, np.floor(extent_mm / spacing_mm).astype(int) + 1)
    positions = tuple(
        np.arange(n_out[a]) * (spacing_mm / spacing[a]) for a in range(3)
    )  # relative to lo
    box = tuple(slice(int(lo[a]), int(hi[a]) + 1) for a in range(3))
    hu_box = np.clip(np.asarray(volume.array[box], dtype=np.float32), -1024.0, 3071.0)
    mask_box = lung_mask[box]
    parenchyma = hu_box[mask_box & (hu_box < -600.0)]
    if parenchyma.size > 200_000:
        parenchyma = parenchyma[:: parenchyma.size // 200_000 + 1]
    fill = float(np.median(parenchyma)) if parenchyma.size else DEFAULT_PARENCHYMA_HU
    hu_box[~mask_box] = fill  # blank before interpolating: no wall leaks into the rim
    image = resample_linear(hu_box, positions)  # type: ignore[arg-type]
    del hu_box
    frac = resample_linear(mask_box.astype(np.float32), positions)  # type: ignore[arg-type]
    origin = src.index_to_world(lo.astype(np.float64))
    geom = ImageGeometry(
        shape_zyx=tuple(int(n) for n in image.shape),  # type: ignore[arg-type]
        spacing_zyx=(spacing_mm, spacing_mm, spacing_mm),
        origin_lps=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=np.array(src.direction),
    )
    return IsoLungImage(
        image=image, mask=frac >= 0.5, geometry=geom, source=src, parenchyma_hu=fill
    )


__all__ = ["IsoLungImage", "build_iso_lung_image", "resample_linear"]
