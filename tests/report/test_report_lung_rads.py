"""Lung-RADS v2022 baseline categories against the published size thresholds."""

from __future__ import annotations

import dataclasses
import math

import pytest
from report_factories import GGN, PART, SOLID
from report_factories import make_nodule as nodule

from medsnowball.core import NoduleType
from medsnowball.report import InvalidFindingsError
from medsnowball.report.guidelines import (
    BASELINE_NOTE,
    FLEISCHNER_VERSION,
    LUNG_RADS_VERSION,
    assess,
    lung_rads_category,
)
from medsnowball.report.lung_rads import (
    LUNG_RADS_MANAGEMENT,
    LUNG_RADS_ORDER,
    classify_lung_rads,
    round_mm,
)

# (mean diameter mm, expected category): solid nodules at baseline
SOLID_CASES = [
    (0.0, "2"),
    (3.0, "2"),
    (5.9, "2"),
    (5.94, "2"),  # rounds to 5.9
    (5.95, "3"),  # rounds half up to 6.0 (v2022: one decimal place)
    (6.0, "3"),
    (7.0, "3"),
    (7.9, "3"),
    (7.95, "4A"),
    (8.0, "4A"),
    (12.0, "4A"),
    (14.9, "4A"),
    (14.95, "4B"),
    (15.0, "4B"),
    (42.0, "4B"),
]


@pytest.mark.parametrize(("diameter", "expected"), SOLID_CASES)
def test_solid_thresholds(diameter: float, expected: str) -> None:
    assert lung_rads_category(nodule(diameter, SOLID)) == expected


# (total mean diameter, solid component mean diameter, expected)
PART_SOLID_CASES = [
    (4.0, 2.0, "2"),
    (5.9, 5.0, "2"),  # total < 6 -> 2 whatever the solid part
    (5.95, 2.0, "3"),  # total rounds to 6.0
    (6.0, 0.0, "3"),
    (6.0, 5.9, "3"),
    (20.0, 5.9, "3"),
    (20.0, 5.95, "4A"),
    (10.0, 6.0, "4A"),
    (10.0, 7.9, "4A"),
    (10.0, 8.0, "4B"),
    (30.0, 15.0, "4B"),
]


@pytest.mark.parametrize(("total", "solid", "expected"), PART_SOLID_CASES)
def test_part_solid_thresholds(total: float, solid: float, expected: str) -> None:
    assert lung_rads_category(nodule(total, PART, solid)) == expected


GROUND_GLASS_CASES = [
    (2.0, "2"),
    (10.0, "2"),
    (29.9, "2"),
    (29.94, "2"),
    (29.95, "3"),
    (30.0, "3"),
    (55.0, "3"),
]


@pytest.mark.parametrize(("diameter", "expected"), GROUND_GLASS_CASES)
def test_ground_glass_thresholds(diameter: float, expected: str) -> None:
    assert lung_rads_category(nodule(diameter, GGN)) == expected


# Juxtapleural solid nodules < 10 mm are category 2 (v2022 wording: "< 10 mm").
JUXTAPLEURAL_CASES = [
    (SOLID, 5.0, "2"),
    (SOLID, 7.0, "2"),  # would be 3 without the rule
    (SOLID, 9.9, "2"),  # would be 4A
    (SOLID, 9.95, "4A"),  # rounds to 10.0: rule no longer applies
    (SOLID, 10.0, "4A"),
    (SOLID, 16.0, "4B"),
    (GGN, 35.0, "3"),  # rule is for solid nodules only
    (PART, 9.0, "4A"),  # 9 mm part-solid with a 6 mm solid part: not downgraded
]


@pytest.mark.parametrize(("kind", "diameter", "expected"), JUXTAPLEURAL_CASES)
def test_juxtapleural_rule(kind: NoduleType, diameter: float, expected: str) -> None:
    solid = 6.0 if kind is PART else None
    n = nodule(diameter, kind, solid, juxtapleural=True)
    assert lung_rads_category(n) == expected


def test_juxtapleural_rule_says_what_it_assumed() -> None:
    rule = classify_lung_rads(nodule(7.0, SOLID, juxtapleural=True)).rule
    assert "juxtapleural" in rule
    assert "assumed" in rule


@pytest.mark.parametrize("kind", [SOLID, PART, GGN])
def test_benign_calcification_is_category_1(kind: NoduleType) -> None:
    assert lung_rads_category(nodule(25.0, kind, calcified=True)) == "1"


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [(5.95, 1, 6.0), (5.949, 1, 5.9), (0.05, 1, 0.1), (2.5, 0, 3.0), (3.5, 0, 4.0), (7.25, 1, 7.3)],
)
def test_round_mm_rounds_half_up(value: float, decimals: int, expected: float) -> None:
    assert round_mm(value, decimals) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_invalid_size_raises_with_path(bad: float) -> None:
    with pytest.raises(InvalidFindingsError) as info:
        lung_rads_category(nodule(bad, SOLID, 1.0, id=7))
    assert "diameter_mm" in info.value.path
    assert isinstance(info.value, ValueError)


def test_exam_without_nodules_is_category_1() -> None:
    assessment, nodules = assess([])
    assert nodules == ()
    assert assessment.lung_rads == "1"
    assert assessment.most_suspicious_nodule is None
    assert assessment.lung_rads_management == LUNG_RADS_MANAGEMENT["1"]
    assert assessment.lung_rads_version == LUNG_RADS_VERSION == "Lung-RADS v2022"
    assert assessment.fleischner_version == FLEISCHNER_VERSION == "Fleischner Society 2017"
    assert "No non-calcified nodules" in assessment.fleischner


def test_exam_category_is_the_highest_and_names_the_nodule() -> None:
    nodules = [
        nodule(5.0, SOLID, id=1),  # 2
        nodule(12.0, SOLID, id=2),  # 4A
        nodule(7.0, SOLID, id=3),  # 3
        nodule(40.0, GGN, id=4),  # 3
    ]
    assessment, out = assess(nodules)
    assert assessment.lung_rads == "4A"
    assert assessment.most_suspicious_nodule == 2
    assert [n.lung_rads for n in out] == ["2", "4A", "3", "3"]
    assert [n.id for n in out] == [1, 2, 3, 4]
    assert assessment.nodule_categories == {1: "2", 2: "4A", 3: "3", 4: "3"}
    assert assessment.lung_rads_management.startswith("3-month LDCT")
    assert BASELINE_NOTE in assessment.notes
    assert any(note.startswith("Nodule 2: 12.0 mm -> Lung-RADS 4A") for note in assessment.notes)
    # the inputs are not modified (frozen dataclasses, replaced copies)
    assert all(n.lung_rads is None for n in nodules)


def test_ties_go_to_the_larger_solid_component_then_lower_id() -> None:
    assessment, _ = assess([nodule(9.0, SOLID, id=1), nodule(11.0, SOLID, id=2)])
    assert assessment.most_suspicious_nodule == 2
    assessment, _ = assess([nodule(9.0, SOLID, id=3), nodule(9.0, SOLID, id=2)])
    assert assessment.most_suspicious_nodule == 2
    # both 4B: the part-solid nodule's 17 mm solid part beats the 16 mm solid nodule
    assessment, _ = assess([nodule(16.0, SOLID, id=1), nodule(20.0, PART, 17.0, id=2)])
    assert assessment.lung_rads == "4B"
    assert assessment.most_suspicious_nodule == 2


def test_only_benign_nodules_give_category_1_without_a_most_suspicious() -> None:
    assessment, out = assess([nodule(12.0, SOLID, calcified=True)])
    assert assessment.lung_rads == "1"
    assert assessment.most_suspicious_nodule is None
    assert out[0].lung_rads == "1"


def test_category_2_exam_names_its_largest_nodule() -> None:
    assessment, _ = assess([nodule(3.0, id=1), nodule(5.0, id=2)])
    assert assessment.lung_rads == "2"
    assert assessment.most_suspicious_nodule == 2
    assert assessment.lung_rads_management == "Continue annual screening with LDCT in 12 months."


@pytest.mark.parametrize(
    ("diameter", "flag", "expected"),
    [
        (5.0, True, "2"),
        (7.0, True, "4X"),
        (10.0, True, "4X"),
        (20.0, True, "4X"),
        (7.0, False, "3"),
    ],
)
def test_4x_only_when_flagged_and_category_3_or_4(
    diameter: float, flag: bool, expected: str
) -> None:
    flagged = {1} if flag else set()
    assessment, out = assess([nodule(diameter, id=1)], suspicious_nodule_ids=flagged)
    assert out[0].lung_rads == expected
    assert assessment.lung_rads == expected
    assert "4X" not in {lung_rads_category(nodule(d)) for d in (3.0, 7.0, 10.0, 20.0)}


def test_every_category_has_management_text() -> None:
    assert set(LUNG_RADS_MANAGEMENT) == set(LUNG_RADS_ORDER)
    assert LUNG_RADS_MANAGEMENT["3"] == "6-month LDCT."
    assert "Referral for further clinical evaluation" in LUNG_RADS_MANAGEMENT["4B"]


def test_assess_returns_replaced_copies() -> None:
    original = nodule(8.0, SOLID, id=5)
    _, (out,) = assess([original])
    assert out == dataclasses.replace(original, lung_rads="4A")
    assert out is not original
