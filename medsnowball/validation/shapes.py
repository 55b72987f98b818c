"""The nodule-shape protocol shared by every shape source of the independent validation set.

A shape is rendered on demand at the voxel size of the scan it is pasted into, as a
*fractional occupancy* (partial-volume aware) centred in its array, so that the same real
reader contour or synthetic shape can be inserted into scans of any resolution.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


@runtime_checkable
class NoduleShape(Protocol):
    """A nodule shape that can be rendered at any voxel size.

    Attributes:
        type: ``"solid"``, ``"part_solid"`` or ``"ground_glass"``.
        source: Where the shape comes from: ``"lidc"`` (a radiologist's contour),
            ``"ellipsoid"``, ``"lobulated"``, ``"spiculated"`` ...
        reference_volume_mm3: The reference volume of the nodule (for LIDC shapes the
            median over the readers' contours; for synthetic shapes the exact volume).
        reference_volume_spread_mm3: Half the range of the readers' volumes (0 for
            synthetic shapes): the spread a measurement cannot be expected to beat.
    """

    type: str
    source: str
    reference_volume_mm3: float
    reference_volume_spread_mm3: float

    def render(self, spacing_zyx: tuple[float, float, float]) -> NDArray[np.float32]:
        """Occupancy in [0, 1] of the whole nodule, ``(z, y, x)``, centred in the array."""
        ...

    def render_solid(self, spacing_zyx: tuple[float, float, float]) -> NDArray[np.float32] | None:
        """Occupancy of the solid component of a part-solid nodule on the same array as
        :meth:`render` (same shape, same centre); ``None`` for solid and ground-glass ones."""
        ...


__all__ = ["NoduleShape"]
