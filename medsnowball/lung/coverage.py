"""Quality flags for lungs cut by the field of view or the scan range.

Rule (documented in docs/cad.md), on the final lung labels:

* ``lungs_touch_fov_edge`` (review): a lung's cut surface on one in-plane edge of the image
  (lung pixels on the outermost row or column, times their in-plane width and the slice
  spacing) is at least ``FOV_EDGE_MIN_MM2``. The field of view cuts the lung there; its
  volume is a lower bound and nodules beyond the edge cannot be found.
* ``lungs_cut_at_scan_range`` (review): the first or last slice holds a lung cross-section
  of at least ``SCAN_END_MIN_MM2`` *and* at least ``SCAN_END_MIN_FRACTION`` of the largest
  lung cross-section of the scan: the scan range does not cover the lungs (an apex or a base
  is missing). A scan that starts at the tip of an apex does not raise it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.findings import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from medsnowball.core.quality import SEVERITY_REVIEW, QualityFlag
from medsnowball.core.volume import ImageGeometry

#: Cut lung surface on one in-plane image edge that raises ``lungs_touch_fov_edge`` (mm^2).
FOV_EDGE_MIN_MM2 = 200.0
#: Lung cross-section on the first/last slice that raises ``lungs_cut_at_scan_range``.
SCAN_END_MIN_MM2 = 1000.0
SCAN_END_MIN_FRACTION = 0.10

CODE_FOV_EDGE = "lungs_touch_fov_edge"
CODE_SCAN_RANGE = "lungs_cut_at_scan_range"

_SIDE_NAMES = {LABEL_RIGHT_LUNG: "right", LABEL_LEFT_LUNG: "left"}


def _direction_name(vector: NDArray[np.float64]) -> str:
    """Patient direction (LPS) a world vector points to most."""
    axis = int(np.argmax(np.abs(vector)))
    positive = bool(vector[axis] > 0)
    names = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))
    return names[axis][int(positive)]


def fov_edge_flags(labels: NDArray[np.uint8], geometry: ImageGeometry) -> tuple[QualityFlag, ...]:
    """``lungs_touch_fov_edge`` for the in-plane edges a lung is cut by (module rule).

    Args:
        labels: Lung labels ``(z, y, x)`` (1 right, 2 left).
        geometry: Grid of the labels.

    Returns:
        Zero or one flag naming every cut lung and image edge.
    """
    sz, sy, sx = geometry.spacing_zyx
    edges = (
        (labels[:, :, 0], sy, -geometry.direction[:, 0]),
        (labels[:, :, -1], sy, geometry.direction[:, 0]),
        (labels[:, 0, :], sx, -geometry.direction[:, 1]),
        (labels[:, -1, :], sx, geometry.direction[:, 1]),
    )
    cuts: list[str] = []
    for line, width, outward in edges:
        for label, name in _SIDE_NAMES.items():
            area = float(np.count_nonzero(line == label)) * width * sz
            if area >= FOV_EDGE_MIN_MM2:
                cuts.append(
                    f"{name} lung at the {_direction_name(outward)} edge ({area / 100:.1f} cm^2)"
                )
    if not cuts:
        return ()
    return (
        QualityFlag(
            CODE_FOV_EDGE,
            "The field of view cuts the lungs ("
            + "; ".join(cuts)
            + "): lung volumes are lower bounds and nodules outside the image are missed.",
            SEVERITY_REVIEW,
        ),
    )


def scan_range_flags(labels: NDArray[np.uint8], geometry: ImageGeometry) -> tuple[QualityFlag, ...]:
    """``lungs_cut_at_scan_range`` when the first or last slice cuts a lung (module rule).

    Args:
        labels: Lung labels ``(z, y, x)`` (any value > 0 is lung).
        geometry: Grid of the labels.

    Returns:
        Zero or one flag naming the cut end(s).
    """
    nz = labels.shape[0]
    if nz == 0:
        return ()
    pixel_mm2 = geometry.spacing_zyx[1] * geometry.spacing_zyx[2]
    area = np.count_nonzero(labels.reshape(nz, -1), axis=1) * pixel_mm2
    largest = float(area.max())
    if largest <= 0:
        return ()
    cuts: list[str] = []
    ends = {0: -geometry.direction[:, 2], nz - 1: geometry.direction[:, 2]}
    for k, outward in ends.items():
        a = float(area[k])
        if a >= SCAN_END_MIN_MM2 and a >= SCAN_END_MIN_FRACTION * largest:
            cuts.append(f"{a / 100:.0f} cm^2 of lung on the {_direction_name(outward)} slice")
    if not cuts:
        return ()
    return (
        QualityFlag(
            CODE_SCAN_RANGE,
            "The scan range does not cover the lungs ("
            + "; ".join(dict.fromkeys(cuts))
            + "): lung volumes are lower bounds and nodules outside the scan are missed.",
            SEVERITY_REVIEW,
        ),
    )


def coverage_flags(labels: NDArray[np.uint8], geometry: ImageGeometry) -> tuple[QualityFlag, ...]:
    """Both coverage flags (field of view, scan range) of a lung segmentation.

    Args:
        labels: Lung labels ``(z, y, x)``.
        geometry: Grid of the labels.

    Returns:
        The flags raised.
    """
    return fov_edge_flags(labels, geometry) + scan_range_flags(labels, geometry)


__all__ = [
    "CODE_FOV_EDGE",
    "CODE_SCAN_RANGE",
    "FOV_EDGE_MIN_MM2",
    "SCAN_END_MIN_FRACTION",
    "SCAN_END_MIN_MM2",
    "coverage_flags",
    "fov_edge_flags",
    "scan_range_flags",
]
