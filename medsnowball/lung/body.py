"""Body mask: the patient's outline, with everything it encloses (lungs, bowel gas) filled.

Rule (documented in docs/cad.md):

1. Voxels denser than ``threshold_hu`` are opened in-plane with a disk of ``opening_mm``
   (detaches the table and thin attachments). The image is continued past its in-plane
   border by repeating the edge pixels for the opening, so tissue that runs into the border
   (a field of view that cuts the patient) is not eroded away there.
2. The largest 3-D component is the body; each axial slice of it is hole-filled.
3. **Open outline.** When the field of view cuts the patient, a lung reaching the border is
   connected to it and is no hole. Every region of a slice that is still not body touches
   the border; it is *enclosed by the body* (added to the mask) when

   * at least ``ENCLOSED_FRACTION`` of its pixels see body tissue in at least three of the
     four in-plane axis directions (left, right, up, down: a region cut off by one border,
     such as a lung reaching the left or the anterior edge), or
   * (fallback, a region in a corner of the image) at least ``ENCLOSED_FRACTION`` of its
     pixels see body in at least two directions *and* it reads like lung: median HU above
     ``CORNER_MEDIAN_HU`` and at most ``CORNER_MAX_PURE_AIR`` of it below ``PURE_AIR_HU``.

   Air around a convex body sees it in at most two directions (three would put the pixel
   inside the body's convex hull), and the air of a corner is mostly pure air (table and
   blankets included), so the air outside the patient stays outside. Stomach and bowel gas
   inside the body are filled like the lungs and removed later by the lung-component rules
   (:mod:`medsnowball.lung.segment`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medsnowball.lung.morphology import disk_structure, fill_holes_per_slice

#: Tissue threshold of the body outline (HU). Fat is about -100, skin and muscle above 0.
BODY_THRESHOLD_HU = -500.0
#: Radius of the in-plane opening that detaches the table, blankets and cables (mm).
BODY_OPENING_MM = 3.0
#: Components whose median HU is at or below this are gas (outside air, bowel gas), not lung.
GAS_MEDIAN_HU = -945.0
#: Fraction of a border region's pixels that must see body around them (open outline rule).
ENCLOSED_FRACTION = 0.5
#: A corner region is lung when its median HU is above this and at most
#: ``CORNER_MAX_PURE_AIR`` of it is pure air (below ``PURE_AIR_HU``): the air around the
#: patient, even with the table and blankets in it, is mostly pure air.
CORNER_MEDIAN_HU = -920.0
PURE_AIR_HU = -960.0
CORNER_MAX_PURE_AIR = 0.10


def _open_in_plane(dense: NDArray[np.bool_], structure: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Binary opening whose in-plane border continues the edge pixels (``(z, y, x)``)."""
    py, px = structure.shape[1] // 2 + 1, structure.shape[2] // 2 + 1
    padded = np.pad(dense, [(0, 0), (py, py), (px, px)], mode="edge")
    opened = ndimage.binary_opening(padded, structure=structure)
    return np.asarray(opened[:, py:-py, px:-px])


def _directions_with_body(body: NDArray[np.bool_]) -> NDArray[np.uint8]:
    """For each pixel, in how many of the 4 in-plane axis directions body lies (0-4)."""
    count = np.zeros(body.shape, np.uint8)
    for axis in (1, 2):
        count += np.maximum.accumulate(body, axis=axis)
        flipped = np.flip(body, axis=axis)
        count += np.flip(np.maximum.accumulate(flipped, axis=axis), axis=axis)
    return count


def close_open_outline(
    filled: NDArray[np.bool_],
    hu: NDArray[np.floating],
    *,
    corner_median_hu: float = CORNER_MEDIAN_HU,
) -> NDArray[np.bool_]:
    """Add the border-touching regions that the body encloses (step 3 of the module rule).

    Args:
        filled: Hole-filled body mask ``(z, y, x)``.
        hu: HU array ``(z, y, x)`` of the same grid.
        corner_median_hu: Median HU a corner region must exceed to count as lung.

    Returns:
        New boolean mask ``(z, y, x)``: ``filled`` plus the enclosed border regions.
    """
    out = filled.copy()
    # Only slices whose body reaches the in-plane border can have an open outline.
    open_k = np.nonzero(
        filled[:, 0, :].any(axis=1)
        | filled[:, -1, :].any(axis=1)
        | filled[:, :, 0].any(axis=1)
        | filled[:, :, -1].any(axis=1)
    )[0]
    if open_k.size == 0:
        return out
    sub = filled[open_k]
    out[open_k] = _close_slices(sub, np.asarray(hu[open_k]), corner_median_hu)
    return out


def _close_slices(
    filled: NDArray[np.bool_], hu: NDArray[np.floating], corner_median_hu: float
) -> NDArray[np.bool_]:
    """:func:`close_open_outline` on a stack of slices ``(k, y, x)``."""
    struct = np.zeros((3, 3, 3), bool)
    struct[1] = ndimage.generate_binary_structure(2, 1)
    lab, n = ndimage.label(~filled, structure=struct)
    if n == 0:
        return filled
    seen = _directions_with_body(filled)
    flat = lab.ravel()
    sizes = np.bincount(flat, minlength=n + 1).astype(np.float64)
    sizes[0] = 1.0
    frac3 = np.bincount(flat, weights=(seen >= 3).ravel(), minlength=n + 1) / sizes
    frac2 = np.bincount(flat, weights=(seen >= 2).ravel(), minlength=n + 1) / sizes
    frac3[0] = frac2[0] = 0.0
    enclosed = frac3 >= ENCLOSED_FRACTION
    corner = np.nonzero((frac2 >= ENCLOSED_FRACTION) & ~enclosed)[0]
    corner = corner[corner > 0]
    if corner.size:
        medians = np.asarray(ndimage.median(hu, lab, index=corner), dtype=np.float64)
        pure = np.bincount(flat, weights=(hu < PURE_AIR_HU).ravel(), minlength=n + 1)
        lung_like = (medians > corner_median_hu) & (
            pure[corner] / sizes[corner] <= CORNER_MAX_PURE_AIR
        )
        enclosed[corner[lung_like]] = True
    enclosed[0] = False
    if not enclosed.any():
        return filled
    return filled | enclosed[lab]


def body_mask(
    hu: NDArray[np.floating],
    spacing_zyx: tuple[float, float, float],
    *,
    threshold_hu: float = BODY_THRESHOLD_HU,
    opening_mm: float = BODY_OPENING_MM,
) -> NDArray[np.bool_]:
    """Largest connected tissue region above ``threshold_hu``, filled slice by slice.

    Rule: see the module docstring (opening, largest component, hole filling per slice,
    regions that an outline open at the image border encloses).

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
    opened = _open_in_plane(dense, disk_structure(opening_mm, (spacing_zyx[1], spacing_zyx[2])))
    if opened.any():
        dense = opened
    lab, n = ndimage.label(dense)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        body = lab == int(np.argmax(sizes))
    else:
        body = lab > 0
    return close_open_outline(fill_holes_per_slice(body), hu)


__all__ = [
    "BODY_OPENING_MM",
    "BODY_THRESHOLD_HU",
    "ENCLOSED_FRACTION",
    "GAS_MEDIAN_HU",
    "body_mask",
    "close_open_outline",
]
