"""Tissue classes of the phantom and their Hounsfield units.

The generator first paints a ``uint8`` tissue-class volume, then maps it to HU with
:func:`tissue_hu_table` (before vessels, nodules, blur and noise are added).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray


class Tissue(IntEnum):
    """Values of ``Phantom.tissue_labels``."""

    AIR = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    LUNG = 4
    MEDIASTINAL_FAT = 5
    HEART = 6
    BLOOD_POOL = 7
    AORTA = 8
    PULMONARY_ARTERY = 9
    VEIN = 10
    AIRWAY_LUMEN = 11
    AIRWAY_WALL = 12
    ESOPHAGUS = 13
    CORTICAL_BONE = 14
    MARROW = 15
    DISC = 16
    CSF = 17
    CARTILAGE = 18
    LIVER = 19
    ABDOMEN = 20
    TABLE_SHELL = 21
    TABLE_CORE = 22
    LUNG_VESSEL = 23  # pulmonary vessel voxel inside the lungs (radius >= 1.5 mm)
    SMALL_VESSEL = 24  # pulmonary vessel voxel inside the lungs (radius < 1.5 mm)
    NODULE = 25


# Typical attenuation of each class (non-contrast unless noted).
_HU: dict[Tissue, float] = {
    Tissue.AIR: -1000.0,
    Tissue.SKIN: 20.0,
    Tissue.FAT: -100.0,
    Tissue.MUSCLE: 45.0,
    Tissue.LUNG: -850.0,
    Tissue.MEDIASTINAL_FAT: -90.0,
    Tissue.HEART: 40.0,
    Tissue.BLOOD_POOL: 40.0,
    Tissue.AORTA: 42.0,
    Tissue.PULMONARY_ARTERY: 40.0,
    Tissue.VEIN: 38.0,
    Tissue.AIRWAY_LUMEN: -990.0,
    Tissue.AIRWAY_WALL: 10.0,
    Tissue.ESOPHAGUS: 35.0,
    Tissue.CORTICAL_BONE: 750.0,
    Tissue.MARROW: 230.0,
    Tissue.DISC: 85.0,
    Tissue.CSF: 12.0,
    Tissue.CARTILAGE: 130.0,
    Tissue.LIVER: 60.0,
    Tissue.ABDOMEN: 35.0,
    Tissue.TABLE_SHELL: 250.0,
    Tissue.TABLE_CORE: -920.0,
    Tissue.LUNG_VESSEL: 40.0,
    Tissue.SMALL_VESSEL: 40.0,
    Tissue.NODULE: 30.0,
}

# With intravenous contrast (portal-venous / late arterial phase).
_CONTRAST_HU: dict[Tissue, float] = {
    Tissue.BLOOD_POOL: 260.0,
    Tissue.AORTA: 280.0,
    Tissue.PULMONARY_ARTERY: 220.0,
    Tissue.VEIN: 180.0,
    Tissue.LIVER: 110.0,
    Tissue.HEART: 110.0,
}

#: HU of pulmonary vessels (lung trees) without / with contrast.
VESSEL_HU = 40.0
VESSEL_HU_CONTRAST = 200.0

#: Mean HU of lung parenchyma; a dependent (posterior) density gradient is added.
LUNG_HU = -850.0

#: Classes that are lung-owned (inside the lung mask when inside the lung region).
CHEST_WALL = (
    Tissue.SKIN,
    Tissue.FAT,
    Tissue.MUSCLE,
    Tissue.CORTICAL_BONE,
    Tissue.MARROW,
    Tissue.CARTILAGE,
)


def tissue_hu_table(contrast: bool = False) -> NDArray[np.float32]:
    """Lookup table ``(256,)`` from tissue class to HU.

    Args:
        contrast: Use contrast-enhanced values for the blood pool and great vessels.

    Returns:
        float32 array; unused entries are -1000.
    """
    lut = np.full(256, -1000.0, dtype=np.float32)
    for t, hu in _HU.items():
        lut[int(t)] = hu
    if contrast:
        for t, hu in _CONTRAST_HU.items():
            lut[int(t)] = hu
    return lut


__all__ = ["CHEST_WALL", "LUNG_HU", "VESSEL_HU", "VESSEL_HU_CONTRAST", "Tissue", "tissue_hu_table"]
