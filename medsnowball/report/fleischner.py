"""Fleischner Society 2017 recommendations for incidental pulmonary nodules, table-driven.

Source: MacMahon H. et al., "Guidelines for Management of Incidental Pulmonary Nodules
Detected on CT Images: From the Fleischner Society 2017", Radiology 2017;284(1):228-243,
Table 1. Sizes are the mean of the long and short axes **rounded to the nearest
millimetre**; the solid size bands are ``< 6 mm``, ``6-8 mm`` (inclusive) and ``> 8 mm``,
the subsolid bands ``< 6 mm`` and ``>= 6 mm``. Risk is the clinical estimate of the
patient's lung-cancer risk (low / high), which medsnowball cannot know: callers pass
``high_risk``.

The guideline does not apply to lung-cancer screening, patients younger than 35 years,
immunocompromised patients or patients with a known primary cancer
(:data:`FLEISCHNER_APPLICABILITY`).

When several nodules are present the guideline asks that "the most suspicious nodule"
guide management. medsnowball makes that choice reproducible with an explicit urgency
rank per table cell (:attr:`FleischnerCell.urgency`, higher = shorter follow-up or more
invasive work-up); ties go to the larger nodule, then to the lower id. The table is
reproduced in ``docs/guidelines.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from medsnowball.core.findings import Nodule, NoduleType
from medsnowball.report.errors import InvalidFindingsError
from medsnowball.report.lung_rads import round_mm

FLEISCHNER_VERSION = "Fleischner Society 2017"

FLEISCHNER_APPLICABILITY = (
    "Fleischner 2017 applies to incidental nodules in adults; it is not for lung-cancer "
    "screening, patients younger than 35 years, immunocompromised patients or patients "
    "with a known primary cancer."
)

NO_NODULES_TEXT = "No non-calcified nodules: no Fleischner follow-up applies."


@dataclass(frozen=True)
class FleischnerCell:
    """One cell of Fleischner Table 1."""

    text: str
    urgency: int


# (nodule kind, multiplicity, size band, risk) -> cell. Kinds: solid, ground_glass,
# part_solid; multiplicity: single, multiple; bands: "<6", "6-8", ">8" (solid) and
# "<6", ">=6" (subsolid); risk: low, high ("any" where the table does not split).
_NO_FOLLOW_UP = FleischnerCell("No routine follow-up.", 0)
_OPTIONAL_12 = FleischnerCell("Optional CT at 12 months.", 1)

FLEISCHNER_TABLE: dict[tuple[str, str, str, str], FleischnerCell] = {
    # Solid, single
    ("solid", "single", "<6", "low"): _NO_FOLLOW_UP,
    ("solid", "single", "<6", "high"): _OPTIONAL_12,
    ("solid", "single", "6-8", "low"): FleischnerCell(
        "CT at 6-12 months, then consider CT at 18-24 months.", 3
    ),
    ("solid", "single", "6-8", "high"): FleischnerCell(
        "CT at 6-12 months, then CT at 18-24 months.", 4
    ),
    ("solid", "single", ">8", "low"): FleischnerCell(
        "Consider CT at 3 months, PET/CT, or tissue sampling.", 8
    ),
    ("solid", "single", ">8", "high"): FleischnerCell(
        "Consider CT at 3 months, PET/CT, or tissue sampling.", 8
    ),
    # Solid, multiple
    ("solid", "multiple", "<6", "low"): _NO_FOLLOW_UP,
    ("solid", "multiple", "<6", "high"): _OPTIONAL_12,
    ("solid", "multiple", "6-8", "low"): FleischnerCell(
        "CT at 3-6 months, then consider CT at 18-24 months.", 6
    ),
    ("solid", "multiple", "6-8", "high"): FleischnerCell(
        "CT at 3-6 months, then at 18-24 months.", 6
    ),
    ("solid", "multiple", ">8", "low"): FleischnerCell(
        "CT at 3-6 months, then consider CT at 18-24 months.", 6
    ),
    ("solid", "multiple", ">8", "high"): FleischnerCell(
        "CT at 3-6 months, then at 18-24 months.", 6
    ),
    # Subsolid, single
    ("ground_glass", "single", "<6", "any"): _NO_FOLLOW_UP,
    ("ground_glass", "single", ">=6", "any"): FleischnerCell(
        "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years.", 2
    ),
    ("part_solid", "single", "<6", "any"): _NO_FOLLOW_UP,
    ("part_solid", "single", ">=6", "any"): FleischnerCell(
        "CT at 3-6 months to confirm persistence. If unchanged and solid component remains "
        "<6 mm, annual CT should be performed for 5 years.",
        7,
    ),
    # Subsolid, multiple
    ("ground_glass", "multiple", "<6", "any"): FleischnerCell(
        "CT at 3-6 months. If stable, consider CT at 2 and 4 years.", 5
    ),
    ("ground_glass", "multiple", ">=6", "any"): FleischnerCell(
        "CT at 3-6 months. Subsequent management based on the most suspicious nodule(s).", 6
    ),
    ("part_solid", "multiple", "<6", "any"): FleischnerCell(
        "CT at 3-6 months. If stable, consider CT at 2 and 4 years.", 5
    ),
    ("part_solid", "multiple", ">=6", "any"): FleischnerCell(
        "CT at 3-6 months. Subsequent management based on the most suspicious nodule(s).", 6
    ),
}

_KIND_LABEL = {"solid": "solid", "ground_glass": "ground-glass", "part_solid": "part-solid"}


@dataclass(frozen=True)
class FleischnerRecommendation:
    """The recommendation for an exam and the nodule that drove it.

    Attributes:
        text: Full recommendation sentence (rule, then the table cell).
        nodule_id: Id of the most suspicious nodule, ``None`` when none applies.
        rule: The table cell used, e.g. ``"solid, single, 6-8 mm, low risk"``.
        recommendation: The cell's recommendation alone.
        notes: Explanations (juxtapleural caveats, solid component >= 6 mm ...).
    """

    text: str
    nodule_id: int | None
    rule: str
    recommendation: str
    notes: tuple[str, ...] = ()


def fleischner_size_mm(diameter_mm: float) -> int:
    """Mean diameter rounded half up to a whole millimetre, as Fleischner 2017 prescribes."""
    return int(round_mm(diameter_mm, 0))


def size_band(kind: str, size_mm: int) -> str:
    """Size band of a rounded size: solid ``<6``, ``6-8``, ``>8``; subsolid ``<6``, ``>=6``."""
    if kind == "solid":
        if size_mm < 6:
            return "<6"
        return "6-8" if size_mm <= 8 else ">8"
    return "<6" if size_mm < 6 else ">=6"


def fleischner_cell(
    kind: str, multiple: bool, size_mm: int, *, high_risk: bool = False
) -> tuple[str, FleischnerCell]:
    """Look up one cell of Table 1.

    Args:
        kind: ``"solid"``, ``"part_solid"`` or ``"ground_glass"``.
        multiple: More than one (non-calcified) nodule in the exam.
        size_mm: Mean diameter rounded to a whole millimetre.
        high_risk: High clinical risk (solid nodules only; subsolid rows do not split).

    Returns:
        The rule description and the cell.
    """
    band = size_band(kind, size_mm)
    multiplicity = "multiple" if multiple else "single"
    risk = ("high" if high_risk else "low") if kind == "solid" else "any"
    cell = FLEISCHNER_TABLE[(kind, multiplicity, band, risk)]
    rule = f"{_KIND_LABEL[kind]}, {multiplicity}, {band} mm"
    if risk != "any":
        rule += f", {risk} risk"
    return rule, cell


def fleischner_recommendation(
    nodules: Sequence[Nodule], *, high_risk: bool = False
) -> FleischnerRecommendation:
    """Fleischner 2017 recommendation for the nodules of one exam.

    Calcified nodules are benign and ignored. Each remaining nodule is looked up in the
    table of its type with the exam's multiplicity; the cell with the highest urgency
    wins (ties: larger nodule, then lower id).

    Args:
        nodules: Nodules of the exam (already measured; ``diameter_mm`` is the mean of
            long and short axes).
        high_risk: The patient is at high clinical risk of lung cancer.

    Returns:
        The recommendation; ``nodule_id`` is ``None`` when no nodule needs one.

    Raises:
        InvalidFindingsError: For a negative or non-finite diameter.
    """
    relevant = [n for n in nodules if not n.calcified]
    if not relevant:
        return FleischnerRecommendation(NO_NODULES_TEXT, None, "no nodules", NO_NODULES_TEXT)
    multiple = len(relevant) > 1
    entries: list[tuple[tuple[int, float, int], Nodule, str, FleischnerCell, int]] = []
    notes: list[str] = []
    for nodule in relevant:
        if not math.isfinite(nodule.diameter_mm) or nodule.diameter_mm < 0:
            raise InvalidFindingsError(
                f"Nodule {nodule.id} has diameter_mm={nodule.diameter_mm!r}; expected a "
                "finite size >= 0 mm.",
                path=f"$.nodules[id={nodule.id}].diameter_mm",
            )
        kind = NoduleType(nodule.type).value
        size = fleischner_size_mm(nodule.diameter_mm)
        rule, cell = fleischner_cell(kind, multiple, size, high_risk=high_risk)
        entries.append(((cell.urgency, nodule.diameter_mm, -nodule.id), nodule, rule, cell, size))
        if kind == "solid" and nodule.juxtapleural and size >= 6:
            notes.append(
                f"Nodule {nodule.id} is juxtapleural: if it has typical perifissural "
                "morphology (smooth, oval/lentiform/triangular), Fleischner 2017 "
                "recommends no follow-up even above 6 mm."
            )
        if kind == "part_solid" and round_mm(nodule.solid_component_mm, 0) >= 6:
            notes.append(
                f"Nodule {nodule.id}: persistent part-solid nodules with a solid component "
                ">= 6 mm are considered highly suspicious (Fleischner 2017)."
            )
    _, nodule, rule, cell, size = max(entries, key=lambda entry: entry[0])
    kind_label = _KIND_LABEL[NoduleType(nodule.type).value]
    lead = f"{len(relevant)} nodules; most suspicious: " if multiple else ""
    text = f"{lead}nodule {nodule.id}, {kind_label} {size} mm ({rule}): {cell.text}"
    return FleischnerRecommendation(text, nodule.id, rule, cell.text, tuple(notes))


__all__ = [
    "FLEISCHNER_APPLICABILITY",
    "FLEISCHNER_TABLE",
    "FLEISCHNER_VERSION",
    "NO_NODULES_TEXT",
    "FleischnerCell",
    "FleischnerRecommendation",
    "fleischner_cell",
    "fleischner_recommendation",
    "fleischner_size_mm",
    "size_band",
]
