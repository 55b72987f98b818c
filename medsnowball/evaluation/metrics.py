"""Segmentation and measurement agreement: Dice, volume error, diameter error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import NoduleSegmentation


def dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """Dice overlap ``2 |A & B| / (|A| + |B|)`` of two masks of the same shape.

    Args:
        a: Boolean array.
        b: Boolean array of the same shape.

    Returns:
        Dice in [0, 1]; 1.0 when both are empty.

    Raises:
        ConfigError: If the shapes differ.
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ConfigError(f"dice() needs masks of one shape, got {a.shape} and {b.shape}.")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a & b)) / total


def segmentation_dice(seg: NoduleSegmentation, truth: NDArray[np.bool_]) -> float:
    """Dice of a patch mask against a full-volume truth mask (no full-size copy).

    Args:
        seg: Nodule mask patch with its offset.
        truth: Boolean truth mask ``(z, y, x)`` of the whole volume.

    Returns:
        Dice in [0, 1].
    """
    sl = seg.slices
    inside = truth[sl]
    if inside.shape != seg.mask.shape:
        raise ConfigError(
            f"Nodule mask at {seg.offset_zyx} with shape {seg.mask.shape} does not fit in "
            f"the truth mask {truth.shape}."
        )
    inter = int(np.count_nonzero(inside & seg.mask))
    total = int(seg.mask.sum()) + int(np.count_nonzero(truth))
    return 2.0 * inter / total if total else 1.0


def volume_error(predicted_mm3: float, truth_mm3: float) -> float:
    """Signed relative volume error ``(predicted - truth) / truth``.

    Raises:
        ConfigError: If the truth volume is not positive.
    """
    if not truth_mm3 > 0:
        raise ConfigError(f"volume_error needs a positive truth volume, got {truth_mm3}.")
    return (float(predicted_mm3) - float(truth_mm3)) / float(truth_mm3)


def diameter_error(predicted_mm: float, truth_mm: float) -> float:
    """Signed diameter error in mm (``predicted - truth``)."""
    return float(predicted_mm) - float(truth_mm)


def mask_volume_mm3(mask: NDArray[np.bool_], spacing_zyx: Sequence[float]) -> float:
    """Voxel count times voxel volume."""
    return float(np.count_nonzero(mask)) * float(np.prod(np.asarray(spacing_zyx, dtype=float)))


__all__ = [
    "diameter_error",
    "dice",
    "mask_volume_mm3",
    "segmentation_dice",
    "volume_error",
]
