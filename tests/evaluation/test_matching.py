"""LUNA16 matching rules: radius, double hits, irrelevant nodules."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core import ConfigError
from medsnowball.evaluation import TruthNodule, as_truth, match_candidates


def test_hit_is_within_the_radius_inclusive() -> None:
    truth = [((0.0, 0.0, 0.0), 10.0)]
    m = match_candidates([((5.0, 0, 0), 0.5), ((5.01, 0, 0), 0.6)], truth)
    assert m.label == ("tp", "fp")
    assert m.hit_score[0] == pytest.approx(0.5)


def test_double_hits_count_once_with_the_best_score() -> None:
    truth = [((0.0, 0.0, 0.0), 10.0)]
    m = match_candidates([((1, 0, 0), 0.2), ((0, 1, 0), 0.7), ((0, 0, 1), 0.4)], truth)
    assert m.label == ("tp", "tp", "tp")
    assert m.n_nodules == 1
    assert m.nodule_scores.tolist() == [0.7]
    assert m.hit_prediction.tolist() == [1]
    assert m.fp_scores.size == 0


def test_hits_on_irrelevant_nodules_are_neither_tp_nor_fp() -> None:
    truth = [
        {"center_lps": (0, 0, 0), "diameter_mm": 2.5},  # < 3 mm: irrelevant
        {"center_lps": (40, 0, 0), "diameter_mm": 6.0, "relevant": False},  # excluded finding
        {"center_lps": (80, 0, 0), "diameter_mm": 6.0},
    ]
    preds = [((0, 0, 0), 0.9), ((40, 1, 0), 0.8), ((80, 0, 0), 0.3), ((120, 0, 0), 0.1)]
    m = match_candidates(preds, truth, min_diameter_mm=3.0)
    assert m.label == ("ignored", "ignored", "tp", "fp")
    assert m.n_nodules == 1
    assert m.fp_scores.tolist() == [0.1]


def test_a_prediction_on_two_overlapping_nodules_hits_both() -> None:
    truth = [((0, 0, 0), 10.0), ((6, 0, 0), 10.0)]
    m = match_candidates([((3, 0, 0), 0.5)], truth)
    assert m.matched_truth == ((0, 1),)
    assert m.nodule_scores.tolist() == [0.5, 0.5]


def test_relevance_filter_turns_other_hits_into_ignored() -> None:
    truth = [
        TruthNodule((0, 0, 0), 10.0, type="solid"),
        TruthNodule((50, 0, 0), 10.0, "ground_glass"),
    ]
    m = match_candidates(
        [((0, 0, 0), 0.9), ((50, 0, 0), 0.8)], truth, relevant=lambda t: t.type == "solid"
    )
    assert m.label == ("tp", "ignored")
    assert m.n_nodules == 1


def test_missing_diameter_becomes_an_irrelevant_10mm_finding() -> None:
    t = as_truth({"center_lps": (0, 0, 0), "diameter_mm": -1})
    assert t.diameter_mm == 10.0
    assert not t.relevant


def test_empty_inputs() -> None:
    m = match_candidates([], [((0, 0, 0), 5.0)])
    assert m.n_nodules == 1
    assert np.isneginf(m.nodule_scores).all()
    m2 = match_candidates([((0, 0, 0), 0.4)], [])
    assert m2.label == ("fp",)


def test_malformed_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="center_lps"):
        match_candidates([{"score": 0.5}], [])
    with pytest.raises(ConfigError, match="position"):
        match_candidates([((0, 0), 0.5)], [])
