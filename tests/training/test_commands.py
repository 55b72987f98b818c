"""Command functions end to end on a tiny synthetic datalist (what the CLI calls)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsnowball.core.errors import ConfigError
from medsnowball.models.checkpoint import load_checkpoint
from medsnowball.training import (
    evaluate_model,
    export_model,
    synthetic_to_datalist,
    train_classifier,
    train_segmenter,
)


@pytest.fixture(scope="module")
def datalist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synthetic_to_datalist(
        out,
        n_cases=3,
        seed=31,
        shape_zyx=(40, 72, 72),
        spacing_zyx=(2.0, 2.0, 2.0),
        nodules_per_case=3,
        validation_fraction=0.34,
    )
    return out / "datalist.json"


def test_train_classifier_and_segmenter_from_a_datalist(datalist: Path, tmp_path: Path) -> None:
    res = train_classifier(
        datalist,
        tmp_path / "fp",
        epochs=2,
        batch_size=16,
        patch_size=16,
        spacing_mm=1.5,
        negatives_per_case=10,
        positive_copies=2,
        device="cpu",
    )
    assert res.epochs_run == 2
    assert res.best_checkpoint is not None
    cfg = load_checkpoint(res.best_checkpoint).config
    assert cfg.patch.size_zyx == (16, 16, 16)
    assert cfg.training["datalist"] == str(datalist)
    metrics = evaluate_model(res.best_checkpoint, datalist, negatives_per_case=10, device="cpu")
    assert {"auc", "cpm", "accuracy", "score"} <= set(metrics)
    assert 0.0 <= metrics["auc"] <= 1.0
    seg = train_segmenter(
        datalist,
        tmp_path / "unet",
        epochs=1,
        batch_size=4,
        patch_size=16,
        spacing_mm=1.0,
        copies=1,
        device="cpu",
    )
    assert seg.best_checkpoint is not None
    dice = evaluate_model(seg.best_checkpoint, datalist, device="cpu")
    assert 0.0 <= dice["dice"] <= 1.0
    written = export_model(seg.best_checkpoint, tmp_path / "export", formats=("torchscript",))
    assert written["torchscript"].stat().st_size > 10_000


def test_evaluate_rejects_unknown_split(datalist: Path, tmp_path: Path) -> None:
    res = train_classifier(
        datalist,
        tmp_path,
        epochs=1,
        patch_size=16,
        spacing_mm=1.5,
        negatives_per_case=4,
        positive_copies=1,
        device="cpu",
    )
    assert res.best_checkpoint is not None
    with pytest.raises(ConfigError, match="testing"):
        evaluate_model(res.best_checkpoint, datalist, split="testing", device="cpu")
