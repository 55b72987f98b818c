"""Candidate scorer: model I/O, validation, fitting and calibration on known probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsnowball.core import ConfigError
from medsnowball.detection import FEATURE_NAMES, CandidateScorer
from medsnowball.detection.boosting import calibration_table, fit_gbm, fit_logistic, fit_platt


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    logit = 2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.uniform(size=n) < p).astype(float)
    return x, y, p


def test_logistic_recovers_coefficients_and_is_calibrated():
    x, y, _ = _data(20000, 0)
    model = fit_logistic(x, y, ["a", "b", "c"], l2=1e-3)
    scorer = CandidateScorer(model)
    # Coefficients are on standardised features: multiply back by the scale.
    raw = np.asarray(model["coef"]) / np.asarray(model["scale"])
    np.testing.assert_allclose(raw, [2.0, -1.0, 0.0], atol=0.1)
    xt, yt, pt = _data(20000, 1)
    pred = scorer.predict(xt)
    assert np.max(np.abs(pred - pt)) < 0.05
    for _, mean_p, observed, count in calibration_table(pred, yt):
        if count > 500:
            assert observed == pytest.approx(mean_p, abs=0.05)


def test_gbm_learns_a_threshold_rule_and_platt_calibrates():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(6000, 2))
    p = np.where(x[:, 0] > 0.3, 0.9, 0.1)
    y = (rng.uniform(size=6000) < p).astype(float)
    model = fit_gbm(x, y, ["u", "v"], n_trees=40, depth=2, learning_rate=0.2)
    scorer = CandidateScorer(model)
    xt = np.array([[0.8, 0.0], [-0.5, 0.0]])
    pred = scorer.predict(xt)
    assert pred[0] == pytest.approx(0.9, abs=0.05)
    assert pred[1] == pytest.approx(0.1, abs=0.05)
    # Platt scaling of over-confident log-odds brings them back.
    f = 3.0 * np.log(p / (1 - p))
    a, c = fit_platt(f, y)
    assert a == pytest.approx(1.0 / 3.0, rel=0.15)
    assert abs(c) < 0.2


def test_save_load_roundtrip(tmp_path):
    x, y, _ = _data(500, 3)
    scorer = CandidateScorer(fit_gbm(x, y, ["a", "b", "c"], n_trees=5))
    path = scorer.save(tmp_path / "m.json")
    again = CandidateScorer.load(path)
    np.testing.assert_allclose(again.predict(x), scorer.predict(x))
    assert again.score({"a": 0.1, "b": 0.2, "c": 0.3}) == pytest.approx(
        float(scorer.predict(np.array([[0.1, 0.2, 0.3]]))[0])
    )


def test_invalid_models_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="kind"):
        CandidateScorer({"kind": "forest", "features": ["a"]})
    with pytest.raises(ConfigError, match="features"):
        CandidateScorer({"kind": "logistic", "features": []})
    with pytest.raises(ConfigError, match="logistic"):
        CandidateScorer({"kind": "logistic", "features": ["a"], "mean": [0.0]})
    with pytest.raises(ConfigError, match="not found"):
        CandidateScorer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="JSON"):
        CandidateScorer.load(bad)
    scorer = CandidateScorer(
        {
            "kind": "logistic",
            "features": ["a"],
            "mean": [0],
            "scale": [1],
            "coef": [1],
            "intercept": 0,
        }
    )
    with pytest.raises(ConfigError, match="lack"):
        scorer.score({"b": 1.0})


def test_packaged_model_uses_the_detector_features():
    scorer = CandidateScorer.default()
    assert set(scorer.feature_names) <= set(FEATURE_NAMES)
    training = scorer.model.get("training", {})
    assert training.get("train_seeds"), "the packaged model records its training seeds"
    assert min(training["train_seeds"]) >= 1000  # disjoint from the test seeds
    x = np.zeros((4, len(scorer.feature_names)))
    p = scorer.predict(x)
    assert np.all((p >= 0) & (p <= 1))
    json.dumps(scorer.model)  # serialisable


def test_packaged_model_is_calibrated_on_held_out_phantoms():
    training = CandidateScorer.default().model["training"]
    calib = set(training["calibration_seeds"])
    assert not calib & set(training["train_seeds"])
    assert max(calib | set(training["train_seeds"])) < 20000  # the benchmark's seeds
    table = training["calibration_table"]
    assert sum(row["n"] for row in table) > 10000
    for row in table:
        if row["n"] >= 50:  # bins with enough points: observed rate ~ mean score
            assert abs(row["observed"] - row["mean_score"]) <= 0.1, row
    assert training["calibration_brier"] < 0.01
