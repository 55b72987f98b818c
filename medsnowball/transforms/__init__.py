"""MONAI dictionary transforms added by medsnowball.

* :class:`LoadCTd` loads a case (path, :class:`~medsnowball.io.CaseInput` or
  :class:`~medsnowball.core.CTVolume`) into a ``MetaTensor`` ``(1, x, y, z)`` with a RAS
  affine, exactly like MONAI's ``LoadImaged(ensure_channel_first=True)`` lays out a NIfTI.
* :class:`HUWindowd` clips a Hounsfield-unit window and scales it to ``[0, 1]``.
"""

from __future__ import annotations

from medsnowball.transforms.intensity import HU_WINDOWS, HUWindowd
from medsnowball.transforms.load import LoadCTd

__all__ = ["HU_WINDOWS", "HUWindowd", "LoadCTd"]
