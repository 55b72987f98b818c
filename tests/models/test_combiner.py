"""The logistic score combination and its use by ``rescore``."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core.errors import ConfigError
from medsnowball.core.findings import Candidate
from medsnowball.models.combiner import ScoreCombiner, logit
from medsnowball.models.inference import rescore


def _cand(score: float) -> Candidate:
    return Candidate((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), score, 6.0)


def test_combiner_formula_and_round_trip() -> None:
    comb = ScoreCombiner(w_detector=1.5, w_cnn=2.0, bias=-1.0, threshold=0.3, provenance={"n": 3})
    s = comb(np.array([0.8, 0.2]), np.array([0.9, 0.9]))
    z = 1.5 * np.log(np.array([4.0, 0.25])) + 2.0 * np.log(9.0) - 1.0
    np.testing.assert_allclose(s, 1.0 / (1.0 + np.exp(-z)))
    back = ScoreCombiner.from_dict(comb.to_dict())
    assert back == comb
    assert comb.to_dict()["kind"] == "logistic_stacking"
    tta = ScoreCombiner(1.0, 1.0, 0.0, flip_tta=True)
    assert ScoreCombiner.from_dict(tta.to_dict()).flip_tta is True
    # records written before flip averaging existed were fitted without it
    old = {k: v for k, v in tta.to_dict().items() if k != "flip_tta"}
    assert ScoreCombiner.from_dict(old).flip_tta is False


def test_logit_clips_at_the_edges() -> None:
    v = logit(np.array([0.0, 0.5, 1.0]))
    assert v[1] == 0.0
    assert np.isfinite(v).all()
    assert v[2] > 9.0
    assert v[0] == pytest.approx(-v[2])


def test_combiner_rejects_bad_records() -> None:
    with pytest.raises(ConfigError, match="logistic_stacking"):
        ScoreCombiner.from_dict({"kind": "tree"})
    with pytest.raises(ConfigError, match="invalid record"):
        ScoreCombiner.from_dict({"kind": "logistic_stacking", "w_cnn": 1.0})
    with pytest.raises(ConfigError, match="threshold"):
        ScoreCombiner(1.0, 1.0, 0.0, threshold=1.5)


def test_rescore_stacked_keeps_detector_score_and_orders_by_cnn() -> None:
    comb = ScoreCombiner(w_detector=1.0, w_cnn=1.0, bias=0.0)
    cands = [_cand(0.9), _cand(0.6)]
    out = rescore(cands, [0.05, 0.95], "stacked", comb)
    # the detector preferred the first; the CNN reverses the order
    assert out[1].score > out[0].score
    assert out[0].features["detector_score"] == 0.9
    assert out[1].features["fp_probability"] == pytest.approx(0.95)
    assert out[0].score == pytest.approx(float(comb(0.9, 0.05)))
    with pytest.raises(ConfigError, match="needs a fitted"):
        rescore(cands, [0.5, 0.5], "stacked")
    with pytest.raises(ConfigError, match="combine must be"):
        rescore(cands, [0.5, 0.5], "median")
