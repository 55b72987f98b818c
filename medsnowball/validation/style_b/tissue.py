"""Tissue classes and attenuation of style B (values shared with the synth label codes
where the structure is the same, extra classes >= 30)."""

from __future__ import annotations

from enum import IntEnum


class BTissue(IntEnum):
    """Values of ``Phantom.tissue_labels`` for style-B phantoms."""

    AIR = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    LUNG = 4
    MEDIASTINAL_FAT = 5
    HEART = 6
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
    TABLE = 21
    LUNG_VESSEL = 23  # pulmonary vessel in the lung, radius >= 1.5 mm
    SMALL_VESSEL = 24  # pulmonary vessel in the lung, radius < 1.5 mm
    NODULE = 25
    FISSURE = 30
    PLAQUE = 31
    ATELECTASIS = 32
    SCAR = 33
    EMPHYSEMA = 34
    MUCUS = 35
    CALCIFICATION = 36


#: Attenuation (HU, unenhanced) of the classes painted from the label map.
HU: dict[BTissue, float] = {
    BTissue.AIR: -1000.0,
    BTissue.SKIN: 30.0,
    BTissue.FAT: -105.0,
    BTissue.MUSCLE: 50.0,
    BTissue.LUNG: -860.0,
    BTissue.MEDIASTINAL_FAT: -95.0,
    BTissue.HEART: 38.0,
    BTissue.AORTA: 44.0,
    BTissue.PULMONARY_ARTERY: 40.0,
    BTissue.VEIN: 36.0,
    BTissue.AIRWAY_LUMEN: -995.0,
    BTissue.AIRWAY_WALL: 20.0,
    BTissue.ESOPHAGUS: 42.0,
    BTissue.CORTICAL_BONE: 820.0,
    BTissue.MARROW: 210.0,
    BTissue.DISC: 80.0,
    BTissue.CSF: 10.0,
    BTissue.CARTILAGE: 110.0,
    BTissue.LIVER: 58.0,
    BTissue.ABDOMEN: 28.0,
    BTissue.TABLE: 120.0,
    BTissue.LUNG_VESSEL: 40.0,
    BTissue.SMALL_VESSEL: 40.0,
    BTissue.NODULE: 30.0,
    BTissue.FISSURE: -80.0,
    BTissue.PLAQUE: 55.0,
    BTissue.ATELECTASIS: -250.0,
    BTissue.SCAR: 25.0,
    BTissue.EMPHYSEMA: -985.0,
    BTissue.MUCUS: 22.0,
    BTissue.CALCIFICATION: 450.0,
}

#: Chest-wall classes (a juxtapleural nodule touches one of them).
CHEST_WALL: tuple[BTissue, ...] = (
    BTissue.SKIN,
    BTissue.FAT,
    BTissue.MUSCLE,
    BTissue.CORTICAL_BONE,
    BTissue.MARROW,
    BTissue.CARTILAGE,
    BTissue.PLAQUE,
    BTissue.CALCIFICATION,
)

__all__ = ["CHEST_WALL", "HU", "BTissue"]
