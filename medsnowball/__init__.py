"""medsnowball: find, segment, measure and report lung nodules in chest CT.

Research software, not for clinical use.

The top-level package stays light (no torch / MONAI import) so that ``medsnowball
--help`` is fast; heavy modules are imported where they are used.
"""

from __future__ import annotations

from medsnowball.core import (
    CaseResult,
    CTVolume,
    ImageGeometry,
    MedsnowballError,
    Nodule,
)

__version__ = "0.1.0"

__all__ = ["CTVolume", "CaseResult", "ImageGeometry", "MedsnowballError", "Nodule", "__version__"]
