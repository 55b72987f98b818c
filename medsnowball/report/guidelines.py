"""Exam assessment: Lung-RADS v2022 (baseline) and Fleischner 2017.

This module is the entry point the pipeline's ``assess`` step calls. The tables live in
:mod:`medsnowball.report.lung_rads` (ACR Lung-RADS v2022, baseline rows) and
:mod:`medsnowball.report.fleischner` (Fleischner Society 2017, Table 1); both are
reproduced, with their sources, in ``docs/guidelines.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence

from medsnowball.core.findings import Assessment, Nodule
from medsnowball.report.fleischner import (
    FLEISCHNER_APPLICABILITY,
    FLEISCHNER_VERSION,
    FleischnerRecommendation,
    fleischner_recommendation,
)
from medsnowball.report.lung_rads import (
    LUNG_RADS_MANAGEMENT,
    LUNG_RADS_VERSION,
    category_rank,
    classify_lung_rads,
    lung_rads_category,
    round_mm,
)

#: Categories that the 4X modifier may upgrade (v2022: "category 3 or 4 nodules with
#: additional features or imaging findings that increase the suspicion of malignancy").
UPGRADABLE_TO_4X: frozenset[str] = frozenset({"3", "4A", "4B"})

BASELINE_NOTE = (
    "Lung-RADS baseline assessment (no prior CT compared): rules for new, growing or "
    "stable nodules, category 0 for a missing comparison or suspected infection, and the S "
    "modifier are not applied; category 0 is assigned only when part or all of the lungs "
    "cannot be evaluated."
)

#: Fleischner text of an exam without nodules whose lungs were not (fully) evaluated.
INCOMPLETE_FLEISCHNER_TEXT = (
    "Not assessed: part or all of the lungs could not be evaluated, so finding no nodule "
    "is not a negative result."
)


def _suspicion_key(nodule: Nodule, category: str) -> tuple[int, float, float, int]:
    """Sort key: category, then solid-component size, then mean diameter, then lower id."""
    solid = nodule.solid_component_mm
    solid_mm = round_mm(solid) if math.isfinite(solid) and solid >= 0 else 0.0
    return (category_rank(category), solid_mm, round_mm(nodule.diameter_mm), -nodule.id)


def assess(
    nodules: Sequence[Nodule],
    *,
    high_risk: bool = False,
    suspicious_nodule_ids: Collection[int] = (),
    incomplete_reason: str | None = None,
) -> tuple[Assessment, tuple[Nodule, ...]]:
    """Assess one exam: Lung-RADS per nodule and per exam, and the Fleischner advice.

    Args:
        nodules: The exam's nodules (above the operating threshold).
        high_risk: The patient is at high clinical risk (Fleischner solid-nodule rows).
        suspicious_nodule_ids: Nodules a reader (or a custom step) flagged as having
            additional suspicious features; those in category 3, 4A or 4B become 4X.
            medsnowball itself never assigns 4X.
        incomplete_reason: Why part or all of the lungs could not be evaluated (lungs not
            found, cut by the scan range ...). Set, the exam is Lung-RADS 0 ("incomplete:
            part or all of lungs cannot be evaluated", v2022); the nodules found keep
            their own categories and the notes say so.

    Returns:
        The :class:`Assessment` and the nodules, in the given order, with ``lung_rads``
        set (copies made with :func:`dataclasses.replace`).

    Raises:
        InvalidFindingsError: For a nodule with a negative or non-finite size.
    """
    flagged = set(suspicious_nodule_ids)
    notes: list[str] = [BASELINE_NOTE]
    categorized: list[Nodule] = []
    categories: dict[int, str] = {}
    for nodule in nodules:
        result = classify_lung_rads(nodule)
        category, rule = result.category, result.rule
        if nodule.id in flagged and category in UPGRADABLE_TO_4X:
            category, rule = "4X", f"{rule}; upgraded to 4X (additional suspicious features)"
        categories[nodule.id] = category
        notes.append(
            f"Nodule {nodule.id}: {round_mm(nodule.diameter_mm):.1f} mm -> Lung-RADS "
            f"{category} ({rule})."
        )
        categorized.append(dataclasses.replace(nodule, lung_rads=category))

    most_suspicious: int | None = None
    exam_category = "1"
    if categorized:
        top = max(categorized, key=lambda n: _suspicion_key(n, categories[n.id]))
        exam_category = categories[top.id]
        if exam_category != "1":
            most_suspicious = top.id
    elif not incomplete_reason:
        notes.append("No nodules above the operating threshold: Lung-RADS 1.")

    fleischner: FleischnerRecommendation = fleischner_recommendation(nodules, high_risk=high_risk)
    fleischner_text = fleischner.text
    if incomplete_reason:
        found = f"highest nodule category {exam_category}" if categorized else "no nodules"
        notes.append(
            "Lung-RADS 0 (incomplete): part or all of the lungs cannot be evaluated "
            f"({found} in the part evaluated). {incomplete_reason}"
        )
        exam_category = "0"
        if fleischner.nodule_id is None:
            fleischner_text = INCOMPLETE_FLEISCHNER_TEXT
        else:
            fleischner_text += " Part or all of the lungs could not be evaluated."
    notes.extend(fleischner.notes)
    notes.append(FLEISCHNER_APPLICABILITY)
    assessment = Assessment(
        lung_rads=exam_category,
        lung_rads_version=LUNG_RADS_VERSION,
        lung_rads_management=LUNG_RADS_MANAGEMENT[exam_category],
        fleischner=fleischner_text,
        fleischner_version=FLEISCHNER_VERSION,
        most_suspicious_nodule=most_suspicious,
        nodule_categories=categories,
        notes=tuple(notes),
    )
    return assessment, tuple(categorized)


__all__ = [
    "BASELINE_NOTE",
    "FLEISCHNER_VERSION",
    "INCOMPLETE_FLEISCHNER_TEXT",
    "LUNG_RADS_VERSION",
    "UPGRADABLE_TO_4X",
    "assess",
    "fleischner_recommendation",
    "lung_rads_category",
]
