"""Convert between :class:`CTVolume` and MONAI ``MetaTensor``.

Layout, chosen to match what MONAI's ``LoadImage(ensure_channel_first=True)`` returns for
a NIfTI/ITK image, so MONAI transforms (``Orientationd``, ``Spacingd``, ...) treat our
tensors exactly like their own reads:

* tensor shape ``(1, x, y, z)``: channel first, then the spatial axes in index order
  ``(i, j, k)`` (the reverse of our ``(z, y, x)`` arrays); C-contiguous;
* ``affine``: 4x4 float64 mapping ``(i, j, k, 1)`` to **RAS** millimetres (MONAI's
  default ``affine_lps_to_ras=True``): ``diag(-1, -1, 1, 1) @ lps_affine`` with
  ``lps_affine[:3, :3] = direction * spacing_xyz`` and ``lps_affine[:3, 3] = origin_lps``;
* meta ``space = "RAS"``, ``original_affine`` (= affine), ``spatial_shape``,
  ``original_channel_dim = nan`` (no channel in the file), ``filename_or_obj`` = source.

:func:`from_metatensor` inverts it for any affine whose 3x3 part has orthogonal columns
(e.g. after ``Orientationd`` or ``Spacingd``); dtype and geometry survive the round trip.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.volume import CTVolume, ImageGeometry

if TYPE_CHECKING:  # pragma: no cover
    from monai.data import MetaTensor

__all__ = ["LPS_TO_RAS", "from_metatensor", "ras_affine", "to_metatensor"]

#: Flip of the first two world axes; its own inverse.
LPS_TO_RAS: NDArray[np.float64] = np.diag([-1.0, -1.0, 1.0, 1.0])


def ras_affine(geometry: ImageGeometry) -> NDArray[np.float64]:
    """4x4 affine from ``(i, j, k)`` = ``(x, y, z)`` index to RAS mm for ``geometry``."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(geometry.direction) * np.asarray(geometry.spacing_xyz)[None, :]
    lps[:3, 3] = geometry.origin_lps
    return LPS_TO_RAS @ lps


def to_metatensor(volume: CTVolume, dtype: Any = None) -> MetaTensor:
    """Wrap a CT volume as a MONAI ``MetaTensor`` ``(1, x, y, z)`` with a RAS affine.

    Args:
        volume: The CT.
        dtype: Optional numpy dtype to cast to (MONAI's ``LoadImage`` default is float32);
            None keeps the volume's dtype so that :func:`from_metatensor` is exact.

    Returns:
        A new tensor (the data are copied; the volume stays read-only).
    """
    import torch
    from monai.data import MetaTensor

    arr = np.ascontiguousarray(np.asarray(volume.array).transpose(2, 1, 0)[None])
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    affine = torch.as_tensor(ras_affine(volume.geometry), dtype=torch.float64)
    meta = {
        "original_affine": affine.numpy().copy(),
        "spatial_shape": np.asarray(volume.shape[::-1]),
        "space": "RAS",
        "original_channel_dim": math.nan,
        "filename_or_obj": volume.source,
    }
    return MetaTensor(torch.from_numpy(arr), affine=affine, meta=meta)


def from_metatensor(tensor: MetaTensor, **fields: Any) -> CTVolume:
    """Build a :class:`CTVolume` from a MetaTensor laid out as by :func:`to_metatensor`.

    Args:
        tensor: ``(1, x, y, z)`` or ``(x, y, z)`` with a RAS ``affine`` whose 3x3 part has
            orthogonal columns (any axis order/flip, as after MONAI's ``Orientationd``).
            When its meta has ``space == "LPS"`` the affine is taken as LPS instead.
        **fields: Other :class:`CTVolume` fields (``source``, ``series_uid``,
            ``warnings``...). ``source`` defaults to the tensor's ``filename_or_obj``.

    Returns:
        The volume, array ``(z, y, x)`` in the tensor's dtype.

    Raises:
        ValueError: Wrong number of dimensions, more than one channel, or a sheared
            (non-orthogonal) affine.
    """
    plain = tensor.as_tensor() if hasattr(tensor, "as_tensor") else tensor
    arr = np.asarray(plain.detach().cpu().numpy())
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(
                f"from_metatensor expects one channel, got shape {tuple(arr.shape)} (C, x, y, z)."
            )
        arr = arr[0]
    if arr.ndim != 3:
        raise ValueError(f"from_metatensor expects (1, x, y, z) or (x, y, z), got {arr.shape}.")
    affine = np.asarray(tensor.affine, dtype=np.float64)
    meta = getattr(tensor, "meta", {}) or {}
    space = str(meta.get("space", "RAS")).upper()
    lps = affine if space == "LPS" else LPS_TO_RAS @ affine
    m = lps[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"Affine has a zero-length axis: {affine.tolist()}.")
    direction = m / spacing[None, :]
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ValueError(
            "The tensor's affine is sheared (columns not orthogonal); CTVolume needs an "
            f"orthogonal grid. Affine: {affine.tolist()}."
        )
    geometry = ImageGeometry(
        shape_zyx=arr.shape[::-1],
        spacing_zyx=tuple(spacing[::-1].tolist()),  # type: ignore[arg-type]
        origin_lps=tuple(lps[:3, 3].tolist()),  # type: ignore[arg-type]
        direction=direction,
    )
    if "source" not in fields:
        src = meta.get("filename_or_obj", "")
        fields["source"] = str(src) if src is not None else ""
    return CTVolume(array=np.ascontiguousarray(arr.transpose(2, 1, 0)), geometry=geometry, **fields)
