"""Per-nodule segmentation (training-free).

Public API::

    from medsnowball.segmentation import segment_nodule
"""

from __future__ import annotations

from medsnowball.segmentation.classical import segment_nodule, segment_nodule_detailed
from medsnowball.segmentation.params import SegmentationDetails, SegmentationParams

__all__ = [
    "SegmentationDetails",
    "SegmentationParams",
    "segment_nodule",
    "segment_nodule_detailed",
]
