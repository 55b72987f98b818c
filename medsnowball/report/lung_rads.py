"""Lung-RADS v2022 baseline categories, table-driven.

Source: American College of Radiology, *Lung-RADS v2022* assessment categories
(released November 2022), summarised in Christensen J. et al., "ACR Lung-RADS v2022:
Assessment Categories and Management Recommendations", CHEST 2024;165(3):738-753. The
thresholds below are the **baseline** rows of that table (first screening, no prior
CT): medsnowball sees one exam, so the "new", "growing", "stable" and "slowly growing"
rows, category 0 (incomplete / infectious) and the "S" modifier are not applied. The
full table as implemented is reproduced in ``docs/guidelines.md``.

Measurements (v2022): the mean diameter is the mean of the long and short axes,
reported to one decimal place; size thresholds apply to that rounded value. The table's
lower bounds are inclusive and its upper bounds exclusive (``>= 6 to < 8 mm``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from medsnowball.core.findings import Nodule, NoduleType
from medsnowball.report.errors import InvalidFindingsError

LUNG_RADS_VERSION = "Lung-RADS v2022"

#: Categories from least to most suspicious (exam category = the highest).
LUNG_RADS_ORDER: tuple[str, ...] = ("0", "1", "2", "3", "4A", "4B", "4X")


@dataclass(frozen=True)
class SizeBand:
    """One row of a Lung-RADS size table: ``lower_mm <= size < upper_mm`` -> category."""

    lower_mm: float
    upper_mm: float
    category: str

    def contains(self, size_mm: float) -> bool:
        """True when ``lower_mm <= size_mm < upper_mm``."""
        return self.lower_mm <= size_mm < self.upper_mm

    def describe(self, what: str) -> str:
        """Human-readable band, e.g. ``"solid 6 to <8 mm"``."""
        if self.lower_mm <= 0:
            return f"{what} <{self.upper_mm:g} mm"
        if math.isinf(self.upper_mm):
            return f"{what} >={self.lower_mm:g} mm"
        return f"{what} {self.lower_mm:g} to <{self.upper_mm:g} mm"


_INF = math.inf

#: Solid nodules at baseline, by mean diameter (v2022 categories 2, 3, 4A, 4B).
SOLID_BASELINE: tuple[SizeBand, ...] = (
    SizeBand(0.0, 6.0, "2"),
    SizeBand(6.0, 8.0, "3"),
    SizeBand(8.0, 15.0, "4A"),
    SizeBand(15.0, _INF, "4B"),
)

#: Part-solid nodules with a total mean diameter below this are category 2.
PART_SOLID_TOTAL_MIN_MM = 6.0

#: Part-solid nodules with total >= 6 mm, by mean diameter of the solid component.
PART_SOLID_COMPONENT_BASELINE: tuple[SizeBand, ...] = (
    SizeBand(0.0, 6.0, "3"),
    SizeBand(6.0, 8.0, "4A"),
    SizeBand(8.0, _INF, "4B"),
)

#: Non-solid (ground-glass) nodules at baseline, by mean diameter.
GROUND_GLASS_BASELINE: tuple[SizeBand, ...] = (
    SizeBand(0.0, 30.0, "2"),
    SizeBand(30.0, _INF, "3"),
)

#: Juxtapleural solid nodules below this mean diameter are category 2 (v2022 wording:
#: "< 10 mm (< 524 mm3) mean diameter at baseline or new", solid, smooth margins,
#: oval, lentiform or triangular shape).
JUXTAPLEURAL_MAX_MM = 10.0

#: Management recommendation per category (v2022, paraphrased).
LUNG_RADS_MANAGEMENT: dict[str, str] = {
    "0": "Additional lung cancer screening CT images and/or comparison to prior chest CT "
    "examinations is needed.",
    "1": "Continue annual screening with LDCT in 12 months.",
    "2": "Continue annual screening with LDCT in 12 months.",
    "3": "6-month LDCT.",
    "4A": "3-month LDCT; PET/CT may be considered if there is a >= 8 mm solid nodule or "
    "solid component.",
    "4B": "Referral for further clinical evaluation: diagnostic chest CT with or without "
    "contrast; PET/CT may be considered if there is a >= 8 mm solid nodule or solid "
    "component; tissue sampling; and/or referral for further clinical evaluation. "
    "Management depends on clinical evaluation, patient preference and risk of malignancy.",
    "4X": "Referral for further clinical evaluation: diagnostic chest CT with or without "
    "contrast; PET/CT may be considered if there is a >= 8 mm solid nodule or solid "
    "component; tissue sampling; and/or referral for further clinical evaluation. "
    "Management depends on clinical evaluation, patient preference and risk of malignancy.",
}

#: Category descriptors (v2022).
LUNG_RADS_DESCRIPTOR: dict[str, str] = {
    "0": "Incomplete",
    "1": "Negative",
    "2": "Benign",
    "3": "Probably benign",
    "4A": "Suspicious",
    "4B": "Very suspicious",
    "4X": "Very suspicious",
}


@dataclass(frozen=True)
class LungRadsResult:
    """Category of one nodule and the table row that produced it."""

    category: str
    rule: str


def round_mm(value: float, decimals: int = 1) -> float:
    """Round half up to ``decimals`` places (5.95 -> 6.0), as the guidelines prescribe.

    Python's ``round`` rounds half to even and works on the binary value; this rounds
    the decimal representation of ``value`` instead.

    Args:
        value: A finite size in mm.
        decimals: Number of decimal places.

    Returns:
        The rounded value.
    """
    quantum = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_UP))


def category_rank(category: str) -> int:
    """Position of a category in :data:`LUNG_RADS_ORDER` (higher = more suspicious).

    Raises:
        InvalidFindingsError: For a string that is not a Lung-RADS category.
    """
    try:
        return LUNG_RADS_ORDER.index(category)
    except ValueError:
        raise InvalidFindingsError(
            f"Unknown Lung-RADS category {category!r}; expected one of {LUNG_RADS_ORDER}."
        ) from None


def _check_size(nodule: Nodule, name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise InvalidFindingsError(
            f"Nodule {nodule.id} has {name}={value!r}; expected a finite size >= 0 mm. "
            "Check the measure step's output.",
            path=f"$.nodules[id={nodule.id}].{name}",
        )
    return round_mm(value)


def _lookup(bands: tuple[SizeBand, ...], size_mm: float, what: str) -> LungRadsResult:
    for band in bands:
        if band.contains(size_mm):
            return LungRadsResult(band.category, band.describe(what))
    raise InvalidFindingsError(f"No Lung-RADS size band contains {size_mm} mm ({what}).")


def classify_lung_rads(nodule: Nodule) -> LungRadsResult:
    """Lung-RADS v2022 baseline category of one nodule, with the rule that applied.

    Order of the rules: benign calcification (category 1); juxtapleural solid nodule
    ``< 10 mm`` (category 2; smooth margins and oval/lentiform/triangular shape are
    *assumed*, medsnowball does not assess margins); then the size table of the nodule's
    type (solid, part-solid by total and solid-component size, ground-glass).

    Args:
        nodule: A measured nodule; ``diameter_mm`` and ``solid_component_mm`` are rounded
            half up to 0.1 mm before comparison.

    Returns:
        The category (``"1"``, ``"2"``, ``"3"``, ``"4A"`` or ``"4B"``) and the rule text.

    Raises:
        InvalidFindingsError: For a negative or non-finite size.
    """
    diameter = _check_size(nodule, "diameter_mm", nodule.diameter_mm)
    if nodule.calcified:
        return LungRadsResult("1", "benign calcification")
    ntype = NoduleType(nodule.type)
    if ntype is NoduleType.SOLID:
        if nodule.juxtapleural and diameter < JUXTAPLEURAL_MAX_MM:
            return LungRadsResult(
                "2",
                f"juxtapleural solid <{JUXTAPLEURAL_MAX_MM:g} mm "
                "(smooth margins and oval/lentiform/triangular shape assumed)",
            )
        return _lookup(SOLID_BASELINE, diameter, "solid")
    if ntype is NoduleType.GROUND_GLASS:
        return _lookup(GROUND_GLASS_BASELINE, diameter, "ground-glass")
    # part-solid
    if diameter < PART_SOLID_TOTAL_MIN_MM:
        return LungRadsResult("2", f"part-solid, total <{PART_SOLID_TOTAL_MIN_MM:g} mm")
    solid = _check_size(nodule, "solid_component_mm", nodule.solid_component_mm)
    found = _lookup(PART_SOLID_COMPONENT_BASELINE, solid, "solid component")
    return LungRadsResult(
        found.category, f"part-solid, total >={PART_SOLID_TOTAL_MIN_MM:g} mm, {found.rule}"
    )


def lung_rads_category(nodule: Nodule) -> str:
    """Lung-RADS v2022 baseline category of one nodule (see :func:`classify_lung_rads`)."""
    return classify_lung_rads(nodule).category


__all__ = [
    "GROUND_GLASS_BASELINE",
    "JUXTAPLEURAL_MAX_MM",
    "LUNG_RADS_DESCRIPTOR",
    "LUNG_RADS_MANAGEMENT",
    "LUNG_RADS_ORDER",
    "LUNG_RADS_VERSION",
    "PART_SOLID_COMPONENT_BASELINE",
    "PART_SOLID_TOTAL_MIN_MM",
    "SOLID_BASELINE",
    "LungRadsResult",
    "SizeBand",
    "category_rank",
    "classify_lung_rads",
    "lung_rads_category",
    "round_mm",
]
