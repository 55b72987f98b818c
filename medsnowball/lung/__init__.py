"""Lung segmentation (body, airways, right/left, zones) for chest CT.

Public API::

    from medsnowball.lung import segment_lungs, locate, lung_zone_bounds
"""

from __future__ import annotations

from medsnowball.lung.segment import segment_lungs
from medsnowball.lung.zones import locate, lung_zone_bounds

__all__ = ["locate", "lung_zone_bounds", "segment_lungs"]
