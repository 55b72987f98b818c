"""Candidate detection on phantoms with known nodules."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core import Candidate, ConfigError, CTVolume, ImageGeometry, LungSegmentation
from medsnowball.detection import FEATURE_NAMES, CandidateScorer, detect_candidates
from medsnowball.lung import segment_lungs
from medsnowball.synth import Phantom


def _hits(cands: list[Candidate], centre, diameter: float) -> list[int]:
    c = np.asarray(centre)
    return [
        i
        for i, x in enumerate(cands)
        if np.linalg.norm(np.asarray(x.center_lps) - c) <= diameter / 2
    ]


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("parenchymal", "solid"),
        ("juxtapleural", "solid"),
        ("juxtavascular", "solid"),
        ("parenchymal", "ground_glass"),
    ],
)
def test_each_nodule_found_and_ranked_high(
    nodule_phantom: Phantom, nodule_candidates: list[Candidate], location: str, kind: str
):
    truth = next(
        n for n in nodule_phantom.truth.nodules if n.location == location and n.type == kind
    )
    hits = _hits(nodule_candidates, truth.center_lps, truth.diameter_mm)
    assert hits, f"no candidate within the radius of the {kind} {location} nodule"
    best = hits[0]  # candidates are sorted by score
    assert best < 8, f"rank {best}"
    cand = nodule_candidates[best]
    assert cand.score >= 0.5
    # Size estimate and centre are close to the truth.
    assert cand.diameter_mm == pytest.approx(truth.diameter_mm, rel=0.5)
    assert np.linalg.norm(np.subtract(cand.center_lps, truth.center_lps)) < 0.3 * truth.diameter_mm


def test_candidates_sorted_scored_and_consistent(
    nodule_phantom: Phantom, nodule_candidates: list[Candidate]
):
    scores = [c.score for c in nodule_candidates]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len(set(np.round(scores, 6))) > 10  # a model of features, not a constant
    geo = nodule_phantom.volume.geometry
    for c in nodule_candidates[:20]:
        np.testing.assert_allclose(geo.index_to_world(c.center_zyx), c.center_lps, atol=1e-6)
        assert geo.contains_index(c.center_zyx)
        assert set(FEATURE_NAMES) <= set(c.features)
        assert c.detector == "classical"
    # No two candidates closer than the merge radius.
    pos = np.array([c.center_lps for c in nodule_candidates[:50]])
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(pos)) * 1e9
    assert d.min() >= 1.9


def test_nodules_outrank_the_false_positives(
    nodule_phantom: Phantom, nodule_candidates: list[Candidate]
):
    true_idx = set()
    for n in nodule_phantom.truth.nodules:
        true_idx.update(_hits(nodule_candidates, n.center_lps, n.diameter_mm))
    fp_scores = [c.score for i, c in enumerate(nodule_candidates) if i not in true_idx]
    tp_best = [
        nodule_candidates[_hits(nodule_candidates, n.center_lps, n.diameter_mm)[0]].score
        for n in nodule_phantom.truth.nodules
    ]
    assert min(tp_best) > np.percentile(fp_scores, 99)
    assert sum(s >= 0.5 for s in fp_scores) <= 4


def test_phantom_without_nodules_gives_few_confident_candidates(empty_phantom: Phantom):
    lungs = segment_lungs(empty_phantom.volume)
    cands = detect_candidates(empty_phantom.volume, lungs, max_candidates=50)
    assert len(cands) <= 50
    assert sum(c.score >= 0.5 for c in cands) <= 2
    assert np.mean([c.score for c in cands]) < 0.1


def test_options_and_progress(nodule_phantom: Phantom, nodule_lungs: LungSegmentation):
    calls: list[tuple[int, int]] = []
    cands = detect_candidates(
        nodule_phantom.volume,
        nodule_lungs,
        min_diameter_mm=6.0,
        max_diameter_mm=12.0,
        max_candidates=5,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert len(cands) == 5
    assert calls
    assert calls[-1][0] == calls[-1][1]
    assert all(c.diameter_mm >= 3.0 for c in cands)
    # A scorer that ignores everything gives the same score to all.
    flat = CandidateScorer(
        {
            "kind": "logistic",
            "features": ["contrast"],
            "mean": [0.0],
            "scale": [1.0],
            "coef": [0.0],
            "intercept": -1.0,
        }
    )
    same = detect_candidates(nodule_phantom.volume, nodule_lungs, max_candidates=10, scorer=flat)
    assert {round(c.score, 9) for c in same} == {round(1 / (1 + np.e), 9)}


def test_invalid_arguments(nodule_phantom: Phantom, nodule_lungs: LungSegmentation):
    vol = nodule_phantom.volume
    with pytest.raises(ConfigError):
        detect_candidates(vol, nodule_lungs, min_diameter_mm=10.0, max_diameter_mm=5.0)
    with pytest.raises(ConfigError):
        detect_candidates(vol, nodule_lungs, max_candidates=-1)
    other = ImageGeometry((4, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    wrong = LungSegmentation(np.zeros((4, 8, 8), np.uint8), other, 0.0, 0.0)
    with pytest.raises(ConfigError, match="same image grid"):
        detect_candidates(vol, wrong)


def test_empty_lungs_give_no_candidates():
    geo = ImageGeometry((4, 16, 16), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    vol = CTVolume(np.full(geo.shape_zyx, -1000.0, np.float32), geo)
    lungs = LungSegmentation(np.zeros(geo.shape_zyx, np.uint8), geo, 0.0, 0.0)
    assert detect_candidates(vol, lungs) == []


def test_two_slice_volume(nodule_phantom: Phantom):
    vol = nodule_phantom.volume
    truth = nodule_phantom.truth.nodules[0]
    k = round(truth.center_zyx[0])
    geo = vol.geometry
    sub = CTVolume(
        np.asarray(vol.array[k : k + 2]),
        ImageGeometry(
            (2, *geo.shape_zyx[1:]), geo.spacing_zyx, tuple(geo.index_to_world([k, 0, 0]))
        ),
    )
    cands = detect_candidates(sub, segment_lungs(sub))
    assert all(0.0 <= c.score <= 1.0 for c in cands)
    assert all(sub.geometry.contains_index(c.center_zyx) for c in cands)


def test_out_of_range_inputs_are_flagged(nodule_phantom: Phantom, caplog):
    vol = nodule_phantom.volume
    k = vol.shape[0] // 2
    geo = vol.geometry
    sub = CTVolume(
        np.asarray(vol.array[k : k + 2]),
        ImageGeometry(
            (2, *geo.shape_zyx[1:]), geo.spacing_zyx, tuple(geo.index_to_world([k, 0, 0]))
        ),
    )
    with caplog.at_level("WARNING", logger="medsnowball.detection"):
        detect_candidates(sub, segment_lungs(sub), max_candidates=5)
    text = caplog.text
    assert "outside the range" in text  # 1.1 mm pixels
    assert "span only" in text  # a 2-slice volume
