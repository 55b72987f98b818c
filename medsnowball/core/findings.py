"""Frozen result types passed between pipeline stages.

All positions in world space are DICOM patient LPS millimetres ``(x, y, z)``
(``*_lps`` names); all voxel indices are ``(z, y, x)`` (``*_zyx`` names) on the grid of
the :class:`~medsnowball.core.volume.CTVolume` the result was computed from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.quality import STATUS_OK, QualityFlag
from medsnowball.core.volume import ImageGeometry, Vec3


class NoduleType(str, Enum):
    """Attenuation type of a nodule (Lung-RADS / Fleischner vocabulary)."""

    SOLID = "solid"
    PART_SOLID = "part_solid"
    GROUND_GLASS = "ground_glass"


class Side(str, Enum):
    """Which lung (patient's right is at smaller LPS x)."""

    RIGHT = "right"
    LEFT = "left"


class Zone(str, Enum):
    """Cranio-caudal lung zone (rule documented in :mod:`medsnowball.lung`)."""

    UPPER = "upper"
    MIDDLE = "middle"
    LOWER = "lower"


# Label values of LungSegmentation.labels
LABEL_BACKGROUND = 0
LABEL_RIGHT_LUNG = 1
LABEL_LEFT_LUNG = 2


@dataclass(frozen=True, eq=False)
class LungSegmentation:
    """Lung masks on the grid of a CT volume.

    Attributes:
        labels: uint8 array ``(z, y, x)``: 0 outside, 1 right lung, 2 left lung. Vessels
            and nodules inside the lungs (juxtapleural ones included) are inside.
        geometry: Grid of the CT the labels belong to.
        right_ml: Right lung volume in millilitres.
        left_ml: Left lung volume in millilitres.
        body: Optional boolean body mask ``(z, y, x)``.
        zone_bounds_z: Optional world z (LPS mm) of the upper/middle and middle/lower
            zone boundaries, as computed by :mod:`medsnowball.lung`.
        midline_x_lps: World x (LPS mm) of the mediastinal midline the right/left split
            used (patient's right lies at smaller x); ``None`` when unknown.
        quality: Quality flags raised by the lung segmentation (lungs cut by the field of
            view, left/right split repaired, ...).
    """

    labels: NDArray[np.uint8]
    geometry: ImageGeometry
    right_ml: float
    left_ml: float
    body: NDArray[np.bool_] | None = None
    zone_bounds_z: tuple[float, float] | None = None
    midline_x_lps: float | None = None
    quality: tuple[QualityFlag, ...] = ()

    @property
    def mask(self) -> NDArray[np.bool_]:
        """Both lungs as a boolean array ``(z, y, x)``."""
        return self.labels > 0


@dataclass(frozen=True)
class Candidate:
    """A possible nodule found by a detector.

    Attributes:
        center_lps: World position (x, y, z) LPS mm.
        center_zyx: Fractional voxel index (z, y, x) on the source grid.
        score: Probability-like confidence in [0, 1].
        diameter_mm: The detector's size estimate.
        features: Named numeric features the score was computed from.
        detector: Name of the detector that produced it.
    """

    center_lps: Vec3
    center_zyx: Vec3
    score: float
    diameter_mm: float
    features: dict[str, float] = field(default_factory=dict, compare=False)
    detector: str = "classical"


@dataclass(frozen=True, eq=False)
class NoduleSegmentation:
    """A nodule mask stored as a patch of the source grid.

    Attributes:
        candidate: The candidate it was grown from.
        mask: Boolean patch ``(z, y, x)``.
        offset_zyx: Index of the patch's first voxel in the full volume.
    """

    candidate: Candidate
    mask: NDArray[np.bool_]
    offset_zyx: tuple[int, int, int]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Slices that place the patch in the full ``(z, y, x)`` array."""
        return tuple(  # type: ignore[return-value]
            slice(o, o + s) for o, s in zip(self.offset_zyx, self.mask.shape, strict=True)
        )


@dataclass(frozen=True)
class Nodule:
    """A measured nodule.

    Attributes:
        id: 1-based number within the case (also its label in instance masks).
        center_lps: Centroid, world LPS mm (x, y, z).
        score: Malignancy-agnostic detection confidence in [0, 1].
        diameter_mm: Lung-RADS mean diameter: mean of long and short axis on the axial
            slice of largest area, rounded to 0.1 mm.
        long_axis_mm: Longest in-plane diameter on that slice.
        short_axis_mm: Longest diameter perpendicular to the long axis on that slice.
        volume_mm3: 3-D volume.
        equivalent_diameter_mm: Diameter of the sphere with the same volume.
        type: Solid, part-solid or ground-glass.
        solid_component_mm: Mean diameter of the solid component (equals
            ``diameter_mm`` for solid nodules, 0 for pure ground-glass).
        mean_hu: Mean attenuation inside the mask.
        side: Right or left lung (``None`` when outside both masks).
        zone: Upper, middle or lower zone (``None`` when unknown).
        juxtapleural: Touches the pleura / chest wall.
        calcified: Benign calcification pattern (mostly very dense).
        lung_rads: Lung-RADS category of this nodule, set by the assessment step.
    """

    id: int
    center_lps: Vec3
    score: float
    diameter_mm: float
    long_axis_mm: float
    short_axis_mm: float
    volume_mm3: float
    equivalent_diameter_mm: float
    type: NoduleType
    solid_component_mm: float
    mean_hu: float
    side: Side | None = None
    zone: Zone | None = None
    juxtapleural: bool = False
    calcified: bool = False
    lung_rads: str | None = None


@dataclass(frozen=True)
class Assessment:
    """Guideline assessment of one exam.

    Attributes:
        lung_rads: Exam-level Lung-RADS category ("0", "1", "2", "3", "4A", "4B", "4X").
        lung_rads_version: Guideline version string, e.g. "Lung-RADS v2022".
        lung_rads_management: Recommended management for that category.
        fleischner: Fleischner recommendation text.
        fleischner_version: e.g. "Fleischner Society 2017".
        most_suspicious_nodule: ``Nodule.id`` driving the category, or ``None``.
        nodule_categories: Lung-RADS category per nodule id.
        notes: Explanations (why this category, which rule applied).
    """

    lung_rads: str
    lung_rads_version: str
    lung_rads_management: str
    fleischner: str
    fleischner_version: str
    most_suspicious_nodule: int | None = None
    nodule_categories: dict[int, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class CaseResult:
    """Everything medsnowball found in one case; small and picklable.

    Large arrays are optional so that a result can travel between processes cheaply:
    the pipeline keeps them only while writing outputs.

    Attributes:
        case_id: File-system safe, unique id without patient identifiers.
        source: Input path.
        status: ``"ok"``, ``"needs_review"`` (ran to the end, but a quality flag of
            severity ``"review"`` was raised) or ``"failed"``.
        error: Error message when failed.
        study_uid: StudyInstanceUID (DICOM inputs).
        series_uid: SeriesInstanceUID, or the file stem for NIfTI / MetaImage inputs.
        pipeline: Name of the pipeline that produced it.
        geometry: Grid of the analysed image.
        lungs_ml: ``{"left": ml, "right": ml}``.
        nodules: Nodules above the operating threshold.
        candidates: Every scored candidate (for FROC analysis).
        assessment: Lung-RADS / Fleischner assessment.
        warnings: Notes for the reader (irregular spacing resampled, ...).
        quality: Quality flags of the case (see :mod:`medsnowball.core.quality`).
        timings_s: Seconds per step.
        lung_labels: Optional uint8 lung labels ``(z, y, x)``.
        nodule_labels: Optional uint16 instance labels ``(z, y, x)`` (value = ``Nodule.id``).
        extra: Free-form, JSON-serialisable additions by custom steps.
    """

    case_id: str
    source: str
    status: str = STATUS_OK
    error: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    pipeline: str = ""
    geometry: ImageGeometry | None = None
    lungs_ml: dict[str, float] = field(default_factory=dict)
    nodules: tuple[Nodule, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    assessment: Assessment | None = None
    warnings: tuple[str, ...] = ()
    quality: tuple[QualityFlag, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    lung_labels: NDArray[np.uint8] | None = field(default=None, repr=False)
    nodule_labels: NDArray[np.uint16] | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)


__all__ = [
    "LABEL_BACKGROUND",
    "LABEL_LEFT_LUNG",
    "LABEL_RIGHT_LUNG",
    "Assessment",
    "Candidate",
    "CaseResult",
    "LungSegmentation",
    "Nodule",
    "NoduleSegmentation",
    "NoduleType",
    "Side",
    "Zone",
]
