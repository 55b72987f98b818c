"""Fleischner 2017 recommendations against Table 1 of MacMahon et al., Radiology 2017."""

from __future__ import annotations

import itertools

import pytest
from report_factories import GGN, PART, SOLID
from report_factories import make_nodule as nodule

from medsnowball.core import NoduleType
from medsnowball.report.fleischner import (
    FLEISCHNER_APPLICABILITY,
    FLEISCHNER_TABLE,
    NO_NODULES_TEXT,
    fleischner_cell,
    fleischner_recommendation,
    fleischner_size_mm,
    size_band,
)
from medsnowball.report.guidelines import assess

NO_FOLLOW_UP = "No routine follow-up."
OPTIONAL_12 = "Optional CT at 12 months."
SOLID_SINGLE_6_8_LOW = "CT at 6-12 months, then consider CT at 18-24 months."
SOLID_SINGLE_6_8_HIGH = "CT at 6-12 months, then CT at 18-24 months."
SOLID_SINGLE_GT8 = "Consider CT at 3 months, PET/CT, or tissue sampling."
SOLID_MULTI_LOW = "CT at 3-6 months, then consider CT at 18-24 months."
SOLID_MULTI_HIGH = "CT at 3-6 months, then at 18-24 months."
GGN_SINGLE_GE6 = "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years."
PART_SINGLE_GE6 = (
    "CT at 3-6 months to confirm persistence. If unchanged and solid component remains "
    "<6 mm, annual CT should be performed for 5 years."
)
SUBSOLID_MULTI_LT6 = "CT at 3-6 months. If stable, consider CT at 2 and 4 years."
SUBSOLID_MULTI_GE6 = (
    "CT at 3-6 months. Subsequent management based on the most suspicious nodule(s)."
)

# (type, number of nodules, mean diameter mm, high risk, expected recommendation)
# Fleischner rounds the mean diameter to the nearest millimetre: 5.4 -> 5, 5.5 -> 6,
# 8.4 -> 8, 8.5 -> 9.
TABLE_CASES = [
    (SOLID, 1, 4.0, False, NO_FOLLOW_UP),
    (SOLID, 1, 5.4, False, NO_FOLLOW_UP),
    (SOLID, 1, 5.5, False, SOLID_SINGLE_6_8_LOW),
    (SOLID, 1, 5.9, False, SOLID_SINGLE_6_8_LOW),
    (SOLID, 1, 6.0, False, SOLID_SINGLE_6_8_LOW),
    (SOLID, 1, 8.0, False, SOLID_SINGLE_6_8_LOW),
    (SOLID, 1, 8.4, False, SOLID_SINGLE_6_8_LOW),
    (SOLID, 1, 8.5, False, SOLID_SINGLE_GT8),
    (SOLID, 1, 20.0, False, SOLID_SINGLE_GT8),
    (SOLID, 1, 5.4, True, OPTIONAL_12),
    (SOLID, 1, 7.0, True, SOLID_SINGLE_6_8_HIGH),
    (SOLID, 1, 9.0, True, SOLID_SINGLE_GT8),
    (SOLID, 3, 5.0, False, NO_FOLLOW_UP),
    (SOLID, 3, 5.0, True, OPTIONAL_12),
    (SOLID, 3, 7.0, False, SOLID_MULTI_LOW),
    (SOLID, 3, 7.0, True, SOLID_MULTI_HIGH),
    (SOLID, 3, 12.0, False, SOLID_MULTI_LOW),
    (SOLID, 3, 12.0, True, SOLID_MULTI_HIGH),
    (GGN, 1, 5.4, False, NO_FOLLOW_UP),
    (GGN, 1, 5.5, False, GGN_SINGLE_GE6),
    (GGN, 1, 6.0, False, GGN_SINGLE_GE6),
    (GGN, 1, 25.0, True, GGN_SINGLE_GE6),  # subsolid rows do not depend on risk
    (PART, 1, 5.0, False, NO_FOLLOW_UP),
    (PART, 1, 6.0, False, PART_SINGLE_GE6),
    (PART, 1, 14.0, True, PART_SINGLE_GE6),
    (GGN, 2, 4.0, False, SUBSOLID_MULTI_LT6),
    (GGN, 2, 6.0, False, SUBSOLID_MULTI_GE6),
    (PART, 2, 5.0, True, SUBSOLID_MULTI_LT6),
    (PART, 2, 9.0, False, SUBSOLID_MULTI_GE6),
]


@pytest.mark.parametrize(("kind", "count", "diameter", "high_risk", "expected"), TABLE_CASES)
def test_table_1(
    kind: NoduleType, count: int, diameter: float, high_risk: bool, expected: str
) -> None:
    # companions are smaller nodules of the same type, so the sized one drives management
    nodules = [nodule(diameter, kind, id=1)] + [
        nodule(min(diameter, 3.0) / 2, kind, id=i) for i in range(2, count + 1)
    ]
    rec = fleischner_recommendation(nodules, high_risk=high_risk)
    assert rec.recommendation == expected
    assert rec.text.endswith(expected)
    assert rec.nodule_id == 1


@pytest.mark.parametrize(
    ("diameter", "rounded"), [(5.4, 5), (5.5, 6), (5.9, 6), (8.4, 8), (8.5, 9), (0.4, 0)]
)
def test_sizes_round_to_whole_millimetres_half_up(diameter: float, rounded: int) -> None:
    assert fleischner_size_mm(diameter) == rounded


@pytest.mark.parametrize(
    ("kind", "size", "band"),
    [
        ("solid", 5, "<6"),
        ("solid", 6, "6-8"),
        ("solid", 8, "6-8"),
        ("solid", 9, ">8"),
        ("ground_glass", 5, "<6"),
        ("ground_glass", 6, ">=6"),
        ("part_solid", 6, ">=6"),
    ],
)
def test_size_bands(kind: str, size: int, band: str) -> None:
    assert size_band(kind, size) == band


def test_table_covers_every_combination() -> None:
    for kind, multiple, size, high_risk in itertools.product(
        ("solid", "part_solid", "ground_glass"), (False, True), range(0, 40), (False, True)
    ):
        rule, cell = fleischner_cell(kind, multiple, size, high_risk=high_risk)
        assert cell.text
        assert rule.startswith(kind.replace("_", "-"))
    assert len(FLEISCHNER_TABLE) == 20


def test_calcified_nodules_are_ignored() -> None:
    rec = fleischner_recommendation([nodule(12.0, calcified=True, id=1), nodule(4.0, id=2)])
    assert rec.recommendation == NO_FOLLOW_UP  # one relevant nodule: single, < 6 mm
    assert "single" in rec.rule
    rec = fleischner_recommendation([nodule(12.0, calcified=True)])
    assert rec.text == NO_NODULES_TEXT
    assert rec.nodule_id is None


def test_most_suspicious_nodule_drives_multiple_nodules() -> None:
    nodules = [
        nodule(4.0, SOLID, id=1),
        nodule(9.0, SOLID, id=2),  # multiple solid > 8 mm: CT at 3-6 months
        nodule(7.0, GGN, id=3),  # multiple subsolid >= 6 mm: CT at 3-6 months (tie)
    ]
    rec = fleischner_recommendation(nodules)
    assert rec.nodule_id == 2  # tie on urgency -> larger nodule
    assert rec.recommendation == SOLID_MULTI_LOW
    assert rec.text.startswith("3 nodules; most suspicious: nodule 2, solid 9 mm")
    # a single part-solid >= 6 mm outranks a single ground-glass nodule of any size
    rec = fleischner_recommendation([nodule(25.0, GGN, id=1)])
    assert rec.recommendation == GGN_SINGLE_GE6
    rec = fleischner_recommendation([nodule(25.0, GGN, id=1), nodule(7.0, PART, id=2)])
    assert rec.nodule_id == 1  # multiple subsolid, both >= 6: larger one
    assert rec.recommendation == SUBSOLID_MULTI_GE6


def test_notes_flag_juxtapleural_and_large_solid_components() -> None:
    rec = fleischner_recommendation([nodule(7.0, SOLID, juxtapleural=True, id=4)])
    assert any("Nodule 4 is juxtapleural" in n for n in rec.notes)
    rec = fleischner_recommendation([nodule(12.0, PART, 6.0, id=5)])
    assert any("Nodule 5" in n and "highly suspicious" in n for n in rec.notes)
    rec = fleischner_recommendation([nodule(12.0, PART, 4.0, id=5)])
    assert rec.notes == ()


def test_assess_carries_fleischner_and_its_applicability() -> None:
    assessment, _ = assess([nodule(7.0, SOLID)], high_risk=True)
    assert assessment.fleischner.endswith(SOLID_SINGLE_6_8_HIGH)
    assert FLEISCHNER_APPLICABILITY in assessment.notes
    for phrase in ("screening", "35 years", "immunocompromised"):
        assert phrase in FLEISCHNER_APPLICABILITY
    low, _ = assess([nodule(7.0, SOLID)], high_risk=False)
    assert low.fleischner.endswith(SOLID_SINGLE_6_8_LOW)
