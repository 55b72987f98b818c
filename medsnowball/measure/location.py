"""Where a nodule lies: side and zone (via :mod:`medsnowball.lung`) and pleural contact.

Juxtapleural rule: look at the shell of voxels within :data:`CONTACT_MM` (1.5 mm) outside
the nodule mask.

* With a lung segmentation, the nodule abuts the pleura when at least
  :data:`MIN_CONTACT_FRACTION` (3 %) of that shell lies outside the lung mask *and* is
  denser than :data:`WALL_HU` (-500 HU): soft tissue of the chest wall or mediastinum right
  next to the nodule. (The lung mask keeps juxtapleural nodules inside it, so the shell of
  a juxtapleural nodule reaches the wall, that of an intrapulmonary one does not.)
* Without one, the shell must touch *thick* soft tissue: voxels denser than ``WALL_HU``
  that survive a binary opening with a ball of radius :data:`WALL_MIN_RADIUS_MM` (2.5 mm)
  — chest wall and mediastinum do, pulmonary vessels thinner than 5 mm do not.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from medsnowball.core.findings import LungSegmentation, Side, Zone
from medsnowball.core.volume import CTVolume, Vec3

CONTACT_MM = 1.5
MIN_CONTACT_FRACTION = 0.03
WALL_HU = -500.0
WALL_MIN_RADIUS_MM = 2.5


def side_and_zone(
    lungs: LungSegmentation | None, center_lps: Vec3
) -> tuple[Side | None, Zone | None]:
    """Side and zone of a position, ``(None, None)`` without a lung segmentation.

    Args:
        lungs: Lung segmentation of the case, or ``None``.
        center_lps: World position (x, y, z) LPS mm.

    Returns:
        ``(side, zone)`` as :func:`medsnowball.lung.locate` gives them: the side of the
        lung holding the position, or, outside both lungs (or against a lung label far
        across the midline), the side of its world x relative to ``lungs.midline_x_lps``.
    """
    if lungs is None:
        return None, None
    from medsnowball.lung import locate

    return locate(lungs, center_lps)


def _shell(mask: NDArray[np.bool_], spacing_zyx: tuple[float, float, float]) -> NDArray[np.bool_]:
    dist = ndi.distance_transform_edt(~mask, sampling=spacing_zyx)
    # at least the face neighbours, even when a voxel is larger than CONTACT_MM
    reach = max(CONTACT_MM, max(spacing_zyx) * 1.01)
    return (dist > 0) & (dist <= reach)


def _ball_opening(
    region: NDArray[np.bool_], radius_mm: float, spacing_zyx: tuple[float, float, float]
) -> NDArray[np.bool_]:
    """Exact opening with a Euclidean ball via two distance transforms."""
    core = ndi.distance_transform_edt(region, sampling=spacing_zyx) > radius_mm
    if not core.any():
        return core
    return ndi.distance_transform_edt(~core, sampling=spacing_zyx) <= radius_mm


def is_juxtapleural(
    volume: CTVolume,
    mask: NDArray[np.bool_],
    offset_zyx: tuple[int, int, int],
    lungs: LungSegmentation | None,
) -> bool:
    """Whether a nodule touches the pleura / chest wall (rule in the module doc).

    Args:
        volume: The CT.
        mask: Nodule mask patch ``(z, y, x)`` on the volume's grid.
        offset_zyx: Index of the patch's first voxel in the volume.
        lungs: Lung segmentation on the same grid, or ``None``.

    Returns:
        ``True`` when the nodule abuts the pleura.
    """
    if not mask.any():
        return False
    spacing = volume.spacing_zyx
    margin_mm = WALL_MIN_RADIUS_MM * 2 + CONTACT_MM + 1.0
    pad = [int(np.ceil(margin_mm / s)) for s in spacing]
    shape = volume.shape
    lo = [max(0, o - p) for o, p in zip(offset_zyx, pad, strict=True)]
    hi = [min(n, o + m + p) for n, o, m, p in zip(shape, offset_zyx, mask.shape, pad, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    local = np.zeros([b - a for a, b in zip(lo, hi, strict=True)], dtype=bool)
    inner = tuple(
        slice(o - a, o - a + m) for o, a, m in zip(offset_zyx, lo, mask.shape, strict=True)
    )
    local[inner] = mask
    hu = np.asarray(volume.array[box], dtype=np.float32)
    shell = _shell(local, spacing)
    n_shell = int(shell.sum())
    if n_shell == 0:
        return False
    dense = hu > WALL_HU
    if lungs is not None:
        outside = ~np.asarray(lungs.labels[box] > 0)
        contact = shell & outside & dense
    else:
        wall = _ball_opening(dense & ~local, WALL_MIN_RADIUS_MM, spacing)
        contact = shell & wall
    return bool(np.count_nonzero(contact) >= MIN_CONTACT_FRACTION * n_shell)


__all__ = [
    "CONTACT_MM",
    "MIN_CONTACT_FRACTION",
    "WALL_HU",
    "WALL_MIN_RADIUS_MM",
    "is_juxtapleural",
    "side_and_zone",
]
