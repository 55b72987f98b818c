"""Choose the series to analyse in each study, and say why the others were not chosen.

Rules, applied to every discovered DICOM series (also in docs/io.md):

1. **Image**: greyscale (SamplesPerPixel 1) with pixel data.
2. **Modality CT**. A series whose Modality is another value (MR, PT, ...) is skipped
   ("modality MR"). A series *without* a Modality tag is accepted as CT, with a warning,
   when its middle slice looks like CT in Hounsfield units: at least
   :data:`AIR_FRACTION_MIN` of the pixels at or below -800 HU (air around the body or
   in the lungs), no value below -3100 HU and the 99.9th percentile at most 4000 HU.
3. **Not a secondary capture** (SOP class 1.2.840.10008.5.1.4.1.1.7.*).
4. **Not a localizer / scout**: ImageType containing LOCALIZER or SCOUT.
5. **Axial**: the slice normal within :data:`AXIAL_TOLERANCE_DEG` (30 degrees) of the
   patient's head-feet axis.
6. **Consistent**: one Rows x Columns size, one orientation, positions present.
7. **Enough slices**: at least :data:`MIN_SLICES` (2).

Among the eligible series of a study, series with at least :data:`PREFERRED_MIN_SLICES`
slices are preferred to shorter ones; then the **thinnest** slices win (SliceThickness,
else the slice step; differences below 0.01 mm count as equal); then the **most slices**;
then the lowest SeriesNumber. One series per study is selected. Every other series gets
the reason it was not.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from medsnowball.core.errors import CorruptFileError, MissingCodecError
from medsnowball.io.dicom_headers import CT_SOP_CLASSES, SECONDARY_CAPTURE_PREFIX
from medsnowball.io.dicom_pixels import decode_frames
from medsnowball.io.discovery import DicomSeries

__all__ = [
    "AIR_FRACTION_MIN",
    "AXIAL_TOLERANCE_DEG",
    "MIN_SLICES",
    "PREFERRED_MIN_SLICES",
    "CaseInput",
    "SeriesVerdict",
    "dicom_case_id",
    "evaluate_series",
    "orientation_label",
    "sanitize_stem",
    "study_key",
]

logger = logging.getLogger(__name__)

MIN_SLICES = 2
PREFERRED_MIN_SLICES = 20
AXIAL_TOLERANCE_DEG = 30.0
AIR_FRACTION_MIN = 0.02
_THICKNESS_EQUAL_MM = 0.01

CaseKind = Literal["dicom", "nifti", "metaimage", "nrrd"]
ReasonCode = Literal[
    "ok",
    "not_image",
    "modality",
    "no_modality_not_ct",
    "secondary_capture",
    "localizer",
    "not_axial",
    "inconsistent",
    "too_few_slices",
    "not_preferred",
    "unreadable",
    "label_map",
]


@dataclass(frozen=True)
class CaseInput:
    """One case to analyse: a selected DICOM series or an image file.

    Attributes:
        case_id: File-system-safe id, unique within a batch, free of patient identifiers:
            ``"ct_" + sha256(SeriesInstanceUID)[:12]`` for DICOM,
            ``"img_" + sha256(resolved absolute path)[:12]`` for image files (file names
            may hold patient names); with ``find_cases(keep_names=True)`` the sanitised
            file stem instead. Either is de-duplicated with ``_2``, ``_3``...
        source: Folder of the series or path of the image file.
        kind: ``"dicom"``, ``"nifti"``, ``"metaimage"`` or ``"nrrd"``.
        files: Instance files (any order) or the single image file.
        study_uid: StudyInstanceUID (None for image files).
        series_uid: SeriesInstanceUID (None when the files lack it); the file stem for
            image files.
        description: SeriesDescription (or the file name).
        n_slices: Number of slices.
        warnings: Notes from selection that loading copies into ``CTVolume.warnings``
            (e.g. "no Modality tag; accepted as CT because ...").
    """

    case_id: str
    source: str
    kind: CaseKind
    files: tuple[str, ...]
    study_uid: str | None
    series_uid: str | None
    description: str = ""
    n_slices: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def luna_uid(self) -> str:
        """Id for a LUNA16-style CSV: SeriesInstanceUID for DICOM (the case id when the
        files have none), file stem for image files."""
        if self.kind == "dicom":
            return self.series_uid or self.case_id
        return stem_of(self.files[0]) if self.files else self.case_id


@dataclass
class SeriesVerdict:
    """Outcome of the eligibility rules for one series."""

    series: DicomSeries
    eligible: bool
    code: ReasonCode
    reason: str
    orientation: str
    thickness: float | None
    warnings: list[str] = field(default_factory=list)


def stem_of(path: str | os.PathLike[str]) -> str:
    """File name without its image suffix (``a.nii.gz`` -> ``a``)."""
    from medsnowball.io.writers import image_suffix

    name = Path(path).name
    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else Path(name).stem


def sanitize_stem(stem: str) -> str:
    """Keep ``[A-Za-z0-9._-]``, replace other runs with ``_``; never empty.

    Leading ``-`` is dropped too (a folder ``-x`` reads as an option in a shell and a
    cell ``-x`` as a formula in a spreadsheet).
    """
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._").lstrip("-._")
    return clean or "image"


def image_case_id(path: str | os.PathLike[str]) -> str:
    """``"img_"`` + first 12 hex digits of sha256 of the file's resolved absolute path.

    Pseudonymous like :func:`dicom_case_id` (a file name such as ``DOE^JOHN_MRN1.nii.gz``
    does not show) and stable across runs on the same file, so ``--resume`` finds the
    case again; moving or renaming the file gives a new id.
    """
    resolved = str(Path(path).resolve())
    return "img_" + hashlib.sha256(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def dicom_case_id(series_uid: str) -> str:
    """``"ct_"`` + first 12 hex digits of sha256(SeriesInstanceUID)."""
    return "ct_" + hashlib.sha256(series_uid.encode()).hexdigest()[:12]


def study_key(study_uid: str) -> str:
    """Identifier-free label for a study in tables: ``"st_"`` + 8 hex of its UID hash."""
    return "st_" + hashlib.sha256(study_uid.encode()).hexdigest()[:8] if study_uid else "st_none"


def orientation_label(normal: np.ndarray | None) -> str:
    """``"axial"``, ``"coronal"``, ``"sagittal"``, ``"oblique"`` or ``"unknown"``."""
    if normal is None:
        return "unknown"
    cos_tol = np.cos(np.deg2rad(AXIAL_TOLERANCE_DEG))
    ax = np.abs(np.asarray(normal, dtype=float))
    for idx, label in ((2, "axial"), (1, "coronal"), (0, "sagittal")):
        if ax[idx] >= cos_tol:
            return label
    return "oblique"


def _looks_like_ct(series: DicomSeries) -> tuple[bool, str]:
    """Check the middle slice's HU histogram for the missing-Modality rule."""
    slices = [(h, i) for h in series.headers for i in range(h.number_of_frames)]
    slices.sort(key=lambda hi: hi[0].frames[hi[1]].position or (0.0, 0.0, 0.0))
    h, idx = slices[len(slices) // 2]
    try:
        raw = decode_frames(h)[idx].astype(np.float64)
    except (CorruptFileError, MissingCodecError) as exc:
        return False, f"its pixel data could not be checked ({exc})"
    f = h.frames[idx]
    hu = raw * f.slope + f.intercept
    if h.padding_value is not None:
        hu = hu[raw != h.padding_value]
    if hu.size == 0:
        return False, "its middle slice is all padding"
    air = float(np.mean(hu <= -800))
    lo, p999 = float(hu.min()), float(np.percentile(hu, 99.9))
    detail = f"middle slice: {air:.0%} air (<= -800 HU), min {lo:.0f}, 99.9th pct {p999:.0f} HU"
    ok = air >= AIR_FRACTION_MIN and lo >= -3100 and p999 <= 4000
    return ok, detail


def evaluate_series(series: DicomSeries) -> SeriesVerdict:
    """Apply the eligibility rules (module docstring) to one series."""
    first = series.first
    normal = series.normal()
    orient = orientation_label(normal)
    thick = series.slice_thickness

    def verdict(code: ReasonCode, reason: str, warnings: list[str] | None = None) -> SeriesVerdict:
        return SeriesVerdict(
            series, code == "ok", code, reason, orient, thick, list(warnings or [])
        )

    if any(h.samples_per_pixel != 1 for h in series.headers):
        return verdict("not_image", "colour image (SamplesPerPixel > 1), not CT")
    modality = series.modality
    notes: list[str] = []
    if modality is not None and modality.upper() != "CT":
        return verdict("modality", f"modality {modality}, not CT")
    if series.first.sop_class_uid.startswith(SECONDARY_CAPTURE_PREFIX):
        return verdict("secondary_capture", "secondary capture (screenshot), not a CT volume")
    if any(t in ("LOCALIZER", "SCOUT") for t in first.image_type):
        return verdict("localizer", "localizer/scout image (ImageType LOCALIZER)")
    if orient != "axial":
        shown = np.round(normal, 3).tolist() if normal is not None else None
        return verdict(
            "not_axial",
            f"{orient} slices (normal {shown}), not axial within {AXIAL_TOLERANCE_DEG:g} deg",
        )
    sizes = {(h.rows, h.columns) for h in series.headers}
    oris = {
        tuple(np.round(f.orientation, 4)) for h in series.headers for f in h.frames if f.orientation
    }
    missing_pos = sum(1 for h in series.headers for f in h.frames if f.position is None)
    if len(sizes) > 1 or len(oris) > 1 or missing_pos:
        problem = (
            f"mixed image sizes {sorted(sizes)}"
            if len(sizes) > 1
            else "mixed orientations"
            if len(oris) > 1
            else f"{missing_pos} slice(s) without ImagePositionPatient"
        )
        return verdict("inconsistent", f"inconsistent series: {problem}")
    if series.n_slices < MIN_SLICES:
        return verdict(
            "too_few_slices", f"{series.n_slices} slice(s), fewer than the minimum {MIN_SLICES}"
        )
    if modality is None:
        ok, detail = _looks_like_ct(series)
        sop = "CT SOP class" if first.sop_class_uid in CT_SOP_CLASSES else "non-CT SOP class"
        if not ok:
            return verdict(
                "no_modality_not_ct", f"no Modality tag and pixels do not look like CT ({detail})"
            )
        msg = (
            f"Series {series.series_uid} has no Modality tag; accepted as CT because its pixel "
            f"values look like CT Hounsfield units ({detail}; {sop})."
        )
        notes.append(msg)
        logger.warning(msg)
    return verdict("ok", "selected", notes)


def rank_key(v: SeriesVerdict) -> tuple[int, float, int, int, str]:
    """Sort key: smaller is better (preferred length, thinnest, most slices, SeriesNumber)."""
    n = v.series.n_slices
    thick = v.thickness
    # Unknown or non-finite thickness (no SliceThickness and slices sharing one position)
    # ranks last; round() of infinity would raise OverflowError.
    if thick is None or not math.isfinite(thick):
        thick_bucket = float("inf")
    else:
        thick_bucket = round(thick / _THICKNESS_EQUAL_MM) * _THICKNESS_EQUAL_MM
    number = v.series.first.series_number
    return (
        0 if n >= PREFERRED_MIN_SLICES else 1,
        thick_bucket,
        -n,
        number if number is not None else 1 << 30,
        v.series.series_uid,
    )


def why_not_preferred(loser: SeriesVerdict, winner: SeriesVerdict) -> str:
    """Reason text for an eligible series that lost to ``winner`` (all differences named)."""
    ln, wn = loser.series.n_slices, winner.series.n_slices
    lt, wt = loser.thickness, winner.thickness
    parts: list[str] = []
    if lt is not None and wt is not None and lt - wt > _THICKNESS_EQUAL_MM / 2:
        parts.append(f"thicker slices ({lt:g} mm vs {wt:g} mm)")
    if ln < PREFERRED_MIN_SLICES <= wn:
        parts.append(f"only {ln} slices (< {PREFERRED_MIN_SLICES})")
    elif ln < wn:
        parts.append(f"fewer slices ({ln} vs {wn})")
    what = ", ".join(parts) if parts else "ranked lower (same thickness and slice count)"
    return f"not preferred: {what}; selected {dicom_case_id(winner.series.series_uid)}"
