"""Fitting the score combination: logistic regression, threshold choice, validation CPM."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core.errors import ConfigError
from medsnowball.training.stacking import fit_logistic, threshold_at_fp_rate, validation_cpm


def test_fit_logistic_recovers_known_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    z = 1.5 * x[:, 0] - 0.7 * x[:, 1] + 0.3
    y = (rng.random(4000) < 1.0 / (1.0 + np.exp(-z))).astype(int)
    w, b = fit_logistic(x, y, l2=0.0)
    np.testing.assert_allclose(w, [1.5, -0.7], atol=0.15)
    assert b == pytest.approx(0.3, abs=0.15)
    with pytest.raises(ConfigError, match="one class"):
        fit_logistic(x, np.zeros(4000))


def test_threshold_leaves_the_requested_false_positives() -> None:
    fp = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    thr = threshold_at_fp_rate(fp, n_scans=2, fp_per_scan=1.0)  # 2 FPs allowed
    assert thr == pytest.approx(0.75)
    assert int(np.sum(fp >= thr)) == 2
    assert threshold_at_fp_rate(fp, n_scans=1, fp_per_scan=0.0) == pytest.approx(0.95)
    assert threshold_at_fp_rate(fp, n_scans=10, fp_per_scan=1.0) == 0.0


def test_validation_cpm_of_a_hand_made_case() -> None:
    # one scan, two nodules; candidates: hit nodule A (0.9), FP (0.8), hit nodule B (0.3)
    data = {
        "cand_case": np.array([0, 0, 0]),
        "cand_lps": np.array([[0.0, 0.0, 0.0], [50.0, 0.0, 0.0], [100.0, 1.0, 0.0]]),
        "truth_case": np.array([0, 0]),
        "truth_lps": np.array([[0.0, 0.0, 1.0], [100.0, 0.0, 0.0]]),
        "truth_diameter": np.array([6.0, 8.0]),
    }
    good = validation_cpm(data, np.array([0.9, 0.1, 0.5]))
    assert good["cpm"] == pytest.approx(1.0)
    bad = validation_cpm(data, np.array([0.9, 0.8, 0.3]))
    # at 1/8 .. 0.5 FP per scan only A is found; from 1 FP per scan both
    assert bad["cpm"] == pytest.approx((0.5 * 3 + 1.0 * 4) / 7, abs=1e-3)
    assert bad["sens_at_1fp"] == pytest.approx(1.0)
