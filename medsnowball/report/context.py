"""What the human-readable reports (HTML, PDF) show, built once for both.

Everything here is plain strings and numbers. Strings that come from DICOM headers
(patient fields, manufacturer, kernel ...) are passed through unchanged: the HTML
template escapes them (jinja2 autoescape) and the PDF writer draws them with math-text
parsing off, so a header value is always shown as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from medsnowball.core.findings import CaseResult, Nodule, NoduleType
from medsnowball.core.quality import STATUS_NEEDS_REVIEW, STATUS_OK
from medsnowball.core.volume import CTVolume, PatientInfo
from medsnowball.report.fleischner import FLEISCHNER_APPLICABILITY, FLEISCHNER_VERSION
from medsnowball.report.lung_rads import LUNG_RADS_DESCRIPTOR, LUNG_RADS_VERSION

DISCLAIMER = (
    "Research software, not for clinical use. Findings are computer-generated and have "
    "not been reviewed by a radiologist."
)

TYPE_LABELS = {
    NoduleType.SOLID.value: "solid",
    NoduleType.PART_SOLID.value: "part-solid",
    NoduleType.GROUND_GLASS.value: "ground-glass",
}

#: Columns of the nodule table in the HTML and PDF reports.
TABLE_HEADER: tuple[str, ...] = (
    "#",
    "Location",
    "Type",
    "Mean diam. (mm)",
    "Long / short (mm)",
    "Solid comp. (mm)",
    "Volume (mm³)",
    "Mean HU",
    "Score",
    "Lung-RADS",
    "Centre x, y, z (LPS mm)",
)


@dataclass(frozen=True)
class ReportContext:
    """Data shown by the HTML and PDF reports.

    ``quality_flags`` holds ``(severity, code, message)`` of each quality flag; both
    reports show them in a warning box at the top, and nothing when there is none.
    """

    title: str
    case_id: str
    source: str
    study_uid: str
    series_uid: str
    pipeline: str
    medsnowball_version: str
    image_summary: str
    acquisition: tuple[tuple[str, str], ...]
    patient: tuple[tuple[str, str], ...] | None
    lungs: str
    table_header: tuple[str, ...]
    table_rows: tuple[tuple[str, ...], ...]
    nodule_ids: tuple[int, ...]
    nodule_captions: dict[int, str]
    lung_rads: str
    lung_rads_descriptor: str
    lung_rads_management: str
    fleischner: str
    lung_rads_version: str
    fleischner_version: str
    fleischner_applicability: str
    most_suspicious: str
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    disclaimer: str = DISCLAIMER
    status: str = STATUS_OK
    quality_flags: tuple[tuple[str, str, str], ...] = ()

    @property
    def quality_heading(self) -> str:
        """Title of the quality box: why the reader must look (empty without flags)."""
        if not self.quality_flags:
            return ""
        if self.status == STATUS_NEEDS_REVIEW:
            return "Needs review: this result may be incomplete or unreliable"
        return "Quality notes"


def _text(value: object | None) -> str:
    return "" if value is None else str(value)


def location_text(nodule: Nodule) -> str:
    """E.g. ``"right upper"``, ``"left"``, or ``"-"`` when unknown."""
    parts = [getattr(v, "value", v) for v in (nodule.side, nodule.zone) if v is not None]
    return " ".join(str(p) for p in parts) or "-"


def _category(nodule: Nodule, result: CaseResult) -> str:
    if nodule.lung_rads is not None:
        return nodule.lung_rads
    if result.assessment is not None:
        return result.assessment.nodule_categories.get(nodule.id, "-")
    return "-"


def _type_label(nodule: Nodule) -> str:
    value = NoduleType(nodule.type).value
    return TYPE_LABELS.get(value, value)


def nodule_row(nodule: Nodule, result: CaseResult) -> tuple[str, ...]:
    """One table row, formatted, in the order of :data:`TABLE_HEADER`."""
    kind = _type_label(nodule)
    flags = [
        name
        for name, on in (("juxtapleural", nodule.juxtapleural), ("calcified", nodule.calcified))
        if on
    ]
    if flags:
        kind += f" ({', '.join(flags)})"
    x, y, z = nodule.center_lps
    return (
        str(nodule.id),
        location_text(nodule),
        kind,
        f"{nodule.diameter_mm:.1f}",
        f"{nodule.long_axis_mm:.1f} / {nodule.short_axis_mm:.1f}",
        f"{nodule.solid_component_mm:.1f}",
        f"{nodule.volume_mm3:.0f}",
        f"{nodule.mean_hu:.0f}" if math.isfinite(nodule.mean_hu) else "-",
        f"{nodule.score:.2f}",
        _category(nodule, result),
        f"{x:.1f}, {y:.1f}, {z:.1f}",
    )


def patient_fields(patient: PatientInfo) -> tuple[tuple[str, str], ...]:
    """Label/value pairs of the identifying fields that are known."""
    pairs = (
        ("Patient name", patient.name),
        ("Patient ID", patient.patient_id),
        ("Birth date", patient.birth_date),
        ("Sex", patient.sex),
        ("Age", patient.age),
        ("Study date", patient.study_date),
    )
    return tuple((label, str(value)) for label, value in pairs if value not in (None, ""))


def build_context(
    result: CaseResult,
    volume: CTVolume,
    *,
    include_patient_info: bool = False,
    medsnowball_version: str,
    extra_warnings: tuple[str, ...] = (),
) -> ReportContext:
    """Collect what the reports show.

    Args:
        result: The case result.
        volume: The CT it was computed from (geometry, acquisition, patient fields).
        include_patient_info: Show ``volume.patient`` (name, ID, birth date ...).
        medsnowball_version: Version string shown in the footer.
        extra_warnings: Warnings added by the writers (e.g. outputs skipped).

    Returns:
        The report context.
    """
    geom = result.geometry or volume.geometry
    nz, ny, nx = geom.shape_zyx
    sz, sy, sx = geom.spacing_zyx
    acq = volume.acquisition
    acquisition = tuple(
        (label, _text(value))
        for label, value in (
            ("Manufacturer", acq.manufacturer),
            ("Model", acq.model),
            ("Kernel", acq.kernel),
            ("Slice thickness (mm)", acq.slice_thickness_mm),
            ("kVp", acq.kvp),
            ("Contrast", None if acq.contrast is None else ("yes" if acq.contrast else "no")),
        )
        if value not in (None, "")
    )
    lungs_ml = result.lungs_ml or {}
    if lungs_ml:
        lungs = ", ".join(
            f"{side} {lungs_ml[side]:.0f} ml" for side in ("right", "left") if side in lungs_ml
        )
    else:
        lungs = "not measured"
    a = result.assessment
    if a is not None:
        most = "-" if a.most_suspicious_nodule is None else f"nodule {a.most_suspicious_nodule}"
        category = a.lung_rads
    else:
        most, category = "-", "-"
    captions = {
        n.id: f"Nodule {n.id}: {location_text(n)}, {_type_label(n)} {n.diameter_mm:.1f} mm, "
        f"Lung-RADS {_category(n, result)}"
        for n in result.nodules
    }
    return ReportContext(
        title="medsnowball lung nodule report",
        case_id=result.case_id,
        source=str(result.source),
        study_uid=_text(result.study_uid),
        series_uid=_text(result.series_uid),
        pipeline=result.pipeline,
        medsnowball_version=medsnowball_version,
        image_summary=(
            f"{nx} x {ny} x {nz} voxels (x, y, z), spacing {sx:.3g} x {sy:.3g} x {sz:.3g} mm"
        ),
        acquisition=acquisition,
        patient=patient_fields(volume.patient) if include_patient_info else None,
        lungs=lungs,
        table_header=TABLE_HEADER,
        table_rows=tuple(nodule_row(n, result) for n in result.nodules),
        nodule_ids=tuple(n.id for n in result.nodules),
        nodule_captions=captions,
        lung_rads=category,
        lung_rads_descriptor=LUNG_RADS_DESCRIPTOR.get(category, ""),
        lung_rads_management=a.lung_rads_management if a is not None else "not assessed",
        fleischner=a.fleischner if a is not None else "not assessed",
        lung_rads_version=a.lung_rads_version if a is not None else LUNG_RADS_VERSION,
        fleischner_version=a.fleischner_version if a is not None else FLEISCHNER_VERSION,
        fleischner_applicability=FLEISCHNER_APPLICABILITY,
        most_suspicious=most,
        notes=tuple(n for n in a.notes if n != FLEISCHNER_APPLICABILITY) if a is not None else (),
        warnings=tuple(str(w) for w in (*result.warnings, *extra_warnings)),
        status=result.status,
        quality_flags=tuple((f.severity, f.code, f.message) for f in result.quality),
    )


__all__ = [
    "DISCLAIMER",
    "TABLE_HEADER",
    "ReportContext",
    "build_context",
    "location_text",
    "nodule_row",
    "patient_fields",
]
