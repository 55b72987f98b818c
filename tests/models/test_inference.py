"""FP reducer and U-Net segmenter end to end on small phantoms (tiny models trained here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medsnowball import synth
from medsnowball.core.errors import CheckpointError, ConfigError
from medsnowball.core.findings import Candidate
from medsnowball.models.config import ModelConfig, PatchSpec
from medsnowball.models.inference import FPReducer, UNetNoduleSegmenter, resolve_device
from medsnowball.training.commands import train_classifier_on_patches, train_segmenter_on_patches
from medsnowball.training.loop import TrainConfig
from medsnowball.training.metrics import dice, roc_auc
from medsnowball.training.patch_data import TrainingCase, classifier_patches, segmentation_patches


def _case(seed: int) -> TrainingCase:
    rng = np.random.default_rng(seed)
    specs = tuple(
        synth.NoduleSpec(float(rng.uniform(6, 11)), "solid", loc)
        for loc in ("parenchymal", "parenchymal", "juxtavascular")
    )
    ph = synth.generate_phantom(
        synth.PhantomConfig(
            shape_zyx=(48, 80, 80), spacing_zyx=(2.0, 1.8, 1.8), seed=seed, nodules=specs
        )
    )
    nods = ph.truth.nodules
    return TrainingCase(
        volume=ph.volume,
        boxes=np.array([[*n.center_lps, *([n.diameter_mm] * 3)] for n in nods]).reshape(-1, 6),
        seg=np.asarray(ph.nodule_labels),
        seg_labels=tuple(n.id for n in nods),
        lung=np.asarray(ph.lung_labels) > 0,
        case_id=str(seed),
    )


@pytest.fixture(scope="module")
def cases() -> list[TrainingCase]:
    return [_case(s) for s in (101, 102, 103, 104, 105)]


@pytest.fixture(scope="module")
def fp_checkpoint(cases: list[TrainingCase], tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = ModelConfig(
        kind="fp_classifier",
        patch=PatchSpec((16, 16, 16), (1.5, 1.5, 1.5)),
        channels=(8, 16, 32),
        strides=(2, 2, 2),
        dropout=0.0,
    )
    x, y, _ = classifier_patches(cases[:4], cfg.patch, 30, 8, seed=0)
    vx, vy, _ = classifier_patches(cases[3:4], cfg.patch, 30, 1, seed=1)
    tc = TrainConfig(epochs=8, batch_size=32, lr=3e-3, device="cpu", patience=8)
    res = train_classifier_on_patches(x, y, vx, vy, tmp_path_factory.mktemp("fp"), cfg, tc)
    assert res.best_checkpoint is not None
    return res.best_checkpoint


def test_fp_reducer_ranks_nodules_above_lung_points(
    fp_checkpoint: Path, cases: list[TrainingCase]
) -> None:
    from medsnowball.training.patch_data import negative_centers

    test = cases[4]  # not used for training
    vol = test.volume
    negs = negative_centers(test, 30, np.random.default_rng(7))
    cands = [
        Candidate(tuple(vol.index_to_world(c)), tuple(c), 0.5, 5.0, {"f": 1.0})  # type: ignore[arg-type]
        for c in np.vstack([test.centers_zyx, negs])
    ]
    reducer = FPReducer(fp_checkpoint, device="cpu", batch_size=7, combine="replace")
    scored = reducer.score(vol, cands)
    assert [c.center_zyx for c in scored] == [c.center_zyx for c in cands]
    s = np.array([c.score for c in scored])
    assert ((s >= 0) & (s <= 1)).all()
    labels = np.r_[np.ones(len(test.boxes)), np.zeros(len(negs))]
    assert roc_auc(s, labels) > 0.8
    assert scored[0].features["detector_score"] == 0.5
    assert scored[0].features["fp_probability"] == pytest.approx(s[0])
    assert scored[0].features["f"] == 1.0
    assert reducer.score(vol, []) == []
    mean = FPReducer(fp_checkpoint, device="cpu", combine="mean").score(vol, cands[:1])[0]
    assert mean.score == pytest.approx(0.5 * (0.5 + s[0]), abs=1e-5)
    geo = FPReducer(fp_checkpoint, device="cpu").score(vol, cands[:1])[0]  # default
    assert geo.score == pytest.approx(np.sqrt(0.5 * s[0]), abs=1e-5)


def test_unet_segmenter_segments_held_out_nodules(
    cases: list[TrainingCase], tmp_path: Path
) -> None:
    cfg = ModelConfig(
        kind="nodule_unet",
        patch=PatchSpec((24, 24, 24), (1.0, 1.0, 1.0)),
        channels=(8, 16, 32),
        strides=(2, 2),
        dropout=0.0,
    )
    x, m = segmentation_patches(cases[:4], cfg.patch, copies=4, seed=0)
    vx, vm = segmentation_patches(cases[3:4], cfg.patch, copies=1, seed=1)
    tc = TrainConfig(epochs=10, batch_size=8, lr=1e-2, device="cpu", patience=10)
    res = train_segmenter_on_patches(x, m, vx, vm, tmp_path, cfg, tc)
    assert res.best_checkpoint is not None
    seg = UNetNoduleSegmenter(res.best_checkpoint, device="cpu")
    test = cases[4]
    vol = test.volume
    cands = [
        Candidate(tuple(vol.index_to_world(c)), tuple(c), 0.9, float(d))  # type: ignore[arg-type]
        for c, d in zip(test.centers_zyx, test.diameters_mm, strict=True)
    ]
    results = seg.segment_many(vol, cands)
    assert test.seg is not None
    dices = []
    for r, lab in zip(results, test.seg_labels, strict=True):
        full = np.zeros(vol.shape, bool)
        full[r.slices] = r.mask
        dices.append(dice(full, test.seg == lab))
    assert np.mean(dices) > 0.6
    one = seg.segment(vol, cands[0])
    np.testing.assert_array_equal(one.mask, results[0].mask)
    assert one.offset_zyx == results[0].offset_zyx


def test_wrong_kind_and_missing_weights(fp_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="expected 'nodule_unet'"):
        UNetNoduleSegmenter(fp_checkpoint, device="cpu")
    with pytest.raises(CheckpointError, match="not found"):
        FPReducer(tmp_path / "none.safetensors", device="cpu")


def test_device_resolution(monkeypatch: Any) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


def test_flip_tta_averages_the_eight_flipped_patches(
    cases: list[TrainingCase], fp_checkpoint: Path
) -> None:
    plain = FPReducer(fp_checkpoint, device="cpu")
    assert plain.tta is False  # no fitted combiner: no flip averaging unless asked
    flips = FPReducer(fp_checkpoint, device="cpu", tta=True)
    x, _, _ = classifier_patches(cases[4:5], plain.config.patch, 6, 1, seed=3)
    x = x.astype(np.float32)
    expected = np.zeros(len(x))
    for axes in ((), (1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3)):
        expected += plain.patch_probabilities(np.flip(x, axis=axes) if axes else x)
    expected /= 8
    got = flips.patch_probabilities(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the flips matter for these (asymmetric) patches, and per-call overrides work
    assert np.abs(got - plain.patch_probabilities(x)).max() > 1e-4
    np.testing.assert_allclose(
        flips.patch_probabilities(x, tta=False), plain.patch_probabilities(x)
    )
