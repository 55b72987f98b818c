"""The weights shipped in medsnowball/models/weights load and work on a fresh phantom."""

from __future__ import annotations

import numpy as np
import pytest

from medsnowball.core.findings import Candidate
from medsnowball.models.inference import (
    DEFAULT_FP_WEIGHTS,
    DEFAULT_UNET_WEIGHTS,
    FPReducer,
    UNetNoduleSegmenter,
)
from medsnowball.training.metrics import dice

pytestmark = pytest.mark.skipif(
    not (DEFAULT_FP_WEIGHTS.is_file() and DEFAULT_UNET_WEIGHTS.is_file()),
    reason="shipped weights not present",
)


@pytest.fixture(scope="module")
def phantom():  # type: ignore[no-untyped-def]
    from medsnowball import synth

    return synth.generate_phantom(
        synth.PhantomConfig(
            shape_zyx=(100, 256, 256),
            spacing_zyx=(2.0, 1.2, 1.2),
            seed=30001,  # not a training seed (10000..10047)
            nodules=(
                synth.NoduleSpec(9.0, "solid", "parenchymal"),
                synth.NoduleSpec(12.0, "solid", "juxtavascular"),
                synth.NoduleSpec(7.0, "part_solid", "parenchymal"),
            ),
        )
    )


def _cand(vol, zyx, d=8.0):  # type: ignore[no-untyped-def]
    return Candidate(tuple(vol.index_to_world(zyx)), tuple(float(v) for v in zyx), 0.5, d)


def test_shipped_classifier_prefers_nodules(phantom) -> None:  # type: ignore[no-untyped-def]
    vol = phantom.volume
    fp = FPReducer(device="cpu")
    assert fp.config.kind == "fp_classifier"
    assert "command" in fp.config.training
    nod = [_cand(vol, n.center_zyx) for n in phantom.truth.nodules]
    lung = np.argwhere(np.asarray(phantom.lung_labels) > 0)
    rng = np.random.default_rng(0)
    far = [
        p
        for p in lung[rng.choice(len(lung), 200, replace=False)]
        if min(
            np.linalg.norm((p - np.asarray(n.center_zyx)) * vol.spacing_zyx)
            for n in phantom.truth.nodules
        )
        > 15
    ][:60]
    s_nod = [c.score for c in fp.score(vol, nod)]
    s_bg = [c.score for c in fp.score(vol, [_cand(vol, p) for p in far])]
    assert min(s_nod) > np.percentile(s_bg, 90)


def test_shipped_unet_segments_a_solid_nodule(phantom) -> None:  # type: ignore[no-untyped-def]
    vol = phantom.volume
    seg = UNetNoduleSegmenter(device="cpu")
    labels = np.asarray(phantom.nodule_labels)
    scores = []
    for n in phantom.truth.nodules:
        r = seg.segment(vol, _cand(vol, n.center_zyx, n.diameter_mm))
        full = np.zeros(vol.shape, bool)
        full[r.slices] = r.mask
        scores.append(dice(full, labels == n.id))
    assert np.mean(scores) > 0.75


def test_shipped_classifier_carries_its_fitted_combiner() -> None:
    fp = FPReducer(device="cpu", combine="stacked")
    comb = fp.combiner
    assert comb is not None
    # both signals help: positive weights on the detector's and the CNN's logits
    assert comb.w_detector > 0
    assert comb.w_cnn > 0
    assert comb.threshold is not None
    assert 0.0 < comb.threshold < 1.0
    val = comb.provenance["validation"]
    assert val["stacked"]["cpm"] >= val["classical"]["cpm"]
    assert comb.provenance["n_scans"] >= 8
    assert "detector" in fp.config.training["negatives"]  # trained on the detector's FPs
    # fitted on the flip-averaged CNN probability, so inference averages the flips too
    assert comb.flip_tta is True
    assert fp.tta is True
    assert fp.config.training["enriched_classifier_seeds"] == [10100, 10147]
    # a high detector score with a CNN that disagrees ends below a moderate agreement
    assert comb(0.95, 0.01) < comb(0.6, 0.9)
