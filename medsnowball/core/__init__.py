"""Core data model: volumes, geometry, findings, errors. Imports nothing else of ours."""

from __future__ import annotations

from medsnowball.core.errors import (
    CheckpointError,
    ConfigError,
    CorruptFileError,
    ImageTooLargeError,
    InconsistentSeriesError,
    MedsnowballError,
    MissingCodecError,
    MissingDependencyError,
    NoSeriesFoundError,
    ObliqueImageError,
    UnsupportedModalityError,
    WorkerStartError,
)
from medsnowball.core.findings import (
    LABEL_BACKGROUND,
    LABEL_LEFT_LUNG,
    LABEL_RIGHT_LUNG,
    Assessment,
    Candidate,
    CaseResult,
    LungSegmentation,
    Nodule,
    NoduleSegmentation,
    NoduleType,
    Side,
    Zone,
)
from medsnowball.core.quality import QualityFlag
from medsnowball.core.volume import AcquisitionInfo, CTVolume, ImageGeometry, PatientInfo

__all__ = [
    "LABEL_BACKGROUND",
    "LABEL_LEFT_LUNG",
    "LABEL_RIGHT_LUNG",
    "AcquisitionInfo",
    "Assessment",
    "CTVolume",
    "Candidate",
    "CaseResult",
    "CheckpointError",
    "ConfigError",
    "CorruptFileError",
    "ImageGeometry",
    "ImageTooLargeError",
    "InconsistentSeriesError",
    "LungSegmentation",
    "MedsnowballError",
    "MissingCodecError",
    "MissingDependencyError",
    "NoSeriesFoundError",
    "Nodule",
    "NoduleSegmentation",
    "NoduleType",
    "ObliqueImageError",
    "PatientInfo",
    "QualityFlag",
    "Side",
    "UnsupportedModalityError",
    "WorkerStartError",
    "Zone",
]
