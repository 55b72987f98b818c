"""FROC / CPM against examples computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core import Candidate
from medsnowball.evaluation import (
    LUNA16_FP_RATES,
    Prediction,
    TruthNodule,
    cpm,
    froc,
    match_candidates,
)

# Three scans (hand-worked in the comments):
#   A: nodules N1 (d 10 at origin), N2 (d 6 at x=50), N3 (d 2 at x=100, irrelevant < 3 mm)
#      predictions 0.9 -> N1, 0.3 -> N1 again (counts once, at 0.9), 0.8 -> N3 (ignored),
#      0.7 -> nothing (FP), 0.4 -> N2 at distance 2.9 <= radius 3
#   B: nodule N4 (d 8); 0.95 at distance 4.1 > 4 (FP), 0.2 at distance 3.9 (hit), 0.6 FP
#   C: no nodules; 0.5 and 0.1 are FPs
# Relevant nodules 3 (best scores .9, .4, .2), FPs .95 .7 .6 .5 .1 over 3 scans.
# Curve (fps, sens): (0,0) (1/3,0) (1/3,1/3) (2/3,1/3) (1,1/3) (4/3,1/3) (4/3,2/3)
#                    (4/3,1) (5/3,1)
# At 1/8, 1/4: 0; at 1/2: 1/3; at 1: 1/3; at 2, 4, 8: 1  ->  CPM = (2/3 + 3) / 7 = 11/21


def _toy() -> list:
    a_truth = [
        {"center_lps": (0, 0, 0), "diameter_mm": 10.0, "type": "solid"},
        {"center_lps": (50, 0, 0), "diameter_mm": 6.0, "type": "ground_glass"},
        {"center_lps": (100, 0, 0), "diameter_mm": 2.0},
    ]
    a_pred = [
        ((0, 1, 0), 0.9),
        ((0, -2, 0), 0.3),
        ((100, 0.5, 0), 0.8),
        ((30, 0, 0), 0.7),
        ((50, 2.9, 0), 0.4),
    ]
    b_truth = [TruthNodule((0, 0, 0), 8.0)]
    b_pred = [Prediction((0, 4.1, 0), 0.95), Prediction((0, 0, 3.9), 0.2), ((10, 10, 10), 0.6)]
    c_pred = [((0, 0, 0), 0.5), ((5, 5, 5), 0.1)]
    return [
        match_candidates(a_pred, a_truth, min_diameter_mm=3.0),
        match_candidates(b_pred, b_truth, min_diameter_mm=3.0),
        match_candidates(c_pred, [], min_diameter_mm=3.0),
    ]


def test_toy_froc_curve_and_cpm_match_hand_computation() -> None:
    res = froc(_toy())
    assert res.n_scans == 3
    assert res.n_nodules == 3
    assert res.n_false_positives == 5
    expected_fps = [0, 1 / 3, 1 / 3, 2 / 3, 1, 4 / 3, 4 / 3, 4 / 3, 5 / 3]
    expected_sens = [0, 0, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1, 1]
    np.testing.assert_allclose(res.fps, expected_fps)
    np.testing.assert_allclose(res.sensitivity, expected_sens)
    np.testing.assert_allclose(res.sensitivities, [0, 0, 1 / 3, 1 / 3, 1, 1, 1])
    assert res.cpm == pytest.approx(11 / 21)
    assert cpm(res) == pytest.approx(11 / 21)
    assert cpm(_toy()) == pytest.approx(11 / 21)


def test_operating_threshold_and_sensitivity_at() -> None:
    res = froc(_toy())
    # <= 1 FP/scan allows 3 FPs: lowest threshold 0.6 (fps exactly 1)
    assert res.threshold_at(1.0) == pytest.approx(0.6)
    assert res.threshold_at(2.0) == pytest.approx(0.1)
    assert res.threshold_at(0.1) == float("inf")
    assert res.sensitivity_at(1.5) == pytest.approx(1.0)
    assert res.sensitivity_at(0.5) == pytest.approx(1 / 3)


def test_vertical_step_on_an_operating_point_exact_vs_luna16_grid() -> None:
    # 2 scans, 1 nodule each: TP .9, FP .8 (scan 1); FP .7, TP .6 (scan 2)
    # curve (0,0) (0,.5) (.5,.5) (1,.5) (1,1): the step lies exactly at 1 FP/scan
    m1 = match_candidates([((0, 0, 0), 0.9), ((50, 0, 0), 0.8)], [((0, 0, 0), 6.0)])
    m2 = match_candidates([((50, 0, 0), 0.7), ((0, 0, 0), 0.6)], [((0, 0, 0), 6.0)])
    exact = froc([m1, m2])
    luna = froc([m1, m2], mode="luna16")
    assert exact.sensitivity_at(1.0) == pytest.approx(1.0)  # top of the step
    # LUNA16's grid reads 1 FP/scan at 0.9999125, just left of the step
    assert luna.sensitivity_at(1.0) == pytest.approx(0.5)
    assert exact.sensitivity_at(0.125) == pytest.approx(0.5)
    assert luna.sensitivity_at(0.125) == pytest.approx(0.5)


def test_tied_scores_are_interpolated_linearly() -> None:
    m = match_candidates([((0, 0, 0), 0.5), ((40, 0, 0), 0.5)], [((0, 0, 0), 6.0)])
    res = froc([m], fp_rates=(0.5, 1.0))
    np.testing.assert_allclose(res.fps, [0, 1])
    np.testing.assert_allclose(res.sensitivity, [0, 1])
    assert res.sensitivities == pytest.approx((0.5, 1.0))


def test_no_false_positives_gives_final_sensitivity_everywhere() -> None:
    m = match_candidates([((0, 0, 0), 0.9)], [((0, 0, 0), 6.0), ((30, 0, 0), 6.0)])
    res = froc([m])
    assert res.sensitivities == pytest.approx((0.5,) * 7)
    assert res.cpm == pytest.approx(0.5)


def test_bootstrap_is_seeded_and_brackets_the_cpm() -> None:
    rng = np.random.default_rng(3)
    matches = []
    for _ in range(12):
        truth = [((0, 0, 0), 8.0), ((60, 0, 0), 8.0)]
        preds = [((0, 0, 0), float(rng.uniform(0.3, 1.0)))]
        preds += [((200 + 10 * i, 0, 0), float(rng.uniform(0, 0.8))) for i in range(3)]
        matches.append(match_candidates(preds, truth))
    a = froc(matches, n_bootstrap=200, seed=7)
    b = froc(matches, n_bootstrap=200, seed=7)
    c = froc(matches, n_bootstrap=200, seed=8)
    assert a.cpm_ci == b.cpm_ci
    assert a.cpm_ci != c.cpm_ci
    assert a.cpm_ci is not None
    assert a.sensitivities_ci is not None
    assert a.cpm_ci[0] <= a.cpm <= a.cpm_ci[1]
    assert a.cpm_ci[0] < a.cpm_ci[1]
    assert len(a.sensitivities_ci) == len(LUNA16_FP_RATES)
    d = a.to_dict()
    assert d["cpm"] == pytest.approx(a.cpm)
    assert len(d["operating_points"]) == 7


def test_candidates_and_truth_records_are_accepted() -> None:
    cands = [
        Candidate(center_lps=(1.0, 0.0, 0.0), center_zyx=(0, 0, 0), score=0.8, diameter_mm=5.0)
    ]

    class Rec:  # any object with the synth truth attributes
        center_lps = (0.0, 0.0, 0.0)
        diameter_mm = 5.0
        type = "solid"
        location = "parenchymal"
        id = 3
        volume_mm3 = 65.0

    m = match_candidates(cands, [Rec()])
    assert m.label == ("tp",)
    assert m.truth[0].id == 3
    assert m.truth[0].location == "parenchymal"


def test_froc_without_nodules_gives_nan_cpm() -> None:
    m = match_candidates([((0, 0, 0), 0.5)], [])
    res = froc([m])
    assert np.isnan(res.cpm)
    assert res.n_false_positives == 1
