"""Body mask: the patient's outline, with everything it encloses (lungs, bowel gas) filled."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.lung.morphology import disk_structure, fill_holes_per_slice

#: Tissue threshold of the body outline (HU). Fat is about -100, skin and muscle above 0.
BODY_THRESHOLD_HU = -500.0
#: Radius of the in-plane opening that detaches the table, blankets and cables (mm).
BODY_OPENING_MM = 3.0


def body_mask(
    hu: NDArray[np.floating],
    spacing_zyx: tuple[float, float, float],
    *,
    threshold_hu: float = BODY_THRESHOLD_HU,
    opening_mm: float = BODY_OPENING_MM,
) -> NDArray[np.bool_]:
    """Largest connected tissue region above ``threshold_hu``, filled slice by slice.

    Rule: voxels denser than ``threshold_hu`` are opened in-plane with a disk of
    ``opening_mm`` (detaches the table and thin attachments); the largest 3-D component is
    the body; each axial slice of it is hole-filled, so the lungs, airways and bowel gas lie
    inside the mask while the air around the patient does not.

    Args:
        hu: HU array ``(z, y, x)``.
        spacing_zyx: Voxel size in mm.
        threshold_hu: Tissue threshold.
        opening_mm: Radius of the in-plane opening.

    Returns:
        Boolean body mask ``(z, y, x)``; all False when no tissue is present.
    """
    dense = hu > threshold_hu
    if not dense.any():
        return dense
    opened = ndimage.binary_opening(
        dense, structure=disk_structure(opening_mm, (spacing_zyx[1], spacing_zyx[2]))
    )
    if opened.any():
        dense = opened
    lab, n = ndimage.label(dense)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        body = lab == int(np.argmax(sizes))
    else:
        body = lab > 0
    return fill_holes_per_slice(body)


__all__ = ["BODY_OPENING_MM", "BODY_THRESHOLD_HU", "body_mask"]
