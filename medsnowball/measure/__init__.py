"""Nodule measurements: axes, volume, type, solid component, side, zone, pleural contact.

Public API::

    from medsnowball.measure import measure_nodule, axial_axes
"""

from __future__ import annotations

from medsnowball.measure.axes import AxialAxes, axial_axes, round_half_up, slice_axes
from medsnowball.measure.composition import Composition, analyse_composition, solid_component_mask
from medsnowball.measure.location import is_juxtapleural, side_and_zone
from medsnowball.measure.nodule import measure_nodule

__all__ = [
    "AxialAxes",
    "Composition",
    "analyse_composition",
    "axial_axes",
    "is_juxtapleural",
    "measure_nodule",
    "round_half_up",
    "side_and_zone",
    "slice_axes",
    "solid_component_mask",
]
