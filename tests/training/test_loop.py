"""Short training runs on tiny synthetic patches: loss falls, checkpoints, resume, stop."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medsnowball.models.checkpoint import load_checkpoint, load_model
from medsnowball.models.config import ModelConfig
from medsnowball.training import (
    TrainConfig,
    train_classifier_on_patches,
    train_segmenter_on_patches,
)
from medsnowball.training.metrics import dice, patch_cpm, roc_auc


def _cfg(**kw: Any) -> TrainConfig:
    base = {"epochs": 6, "batch_size": 16, "lr": 3e-3, "patience": 10, "device": "cpu", "seed": 0}
    base.update(kw)
    return TrainConfig(**base)


def test_classifier_training_lowers_loss_and_separates_classes(
    tmp_path: Path, classifier_patch_set: dict[str, Any], tiny_classifier_config: ModelConfig
) -> None:
    d = classifier_patch_set
    res = train_classifier_on_patches(
        d["x"], d["y"], d["vx"], d["vy"], tmp_path, tiny_classifier_config, _cfg(), augment=True
    )
    losses = [h["train_loss"] for h in res.history]
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0]
    assert res.best_score > 0.9  # validation patch CPM (+ 0.01 AUC)
    assert res.best_checkpoint is not None
    assert res.best_checkpoint.is_file()
    ckpt = load_checkpoint(res.best_checkpoint)
    assert ckpt.config.training["best_epoch"] == res.best_epoch
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert [int(float(r["epoch"])) for r in rows] == list(range(1, 7))
    assert {"train_loss", "val_auc", "val_cpm", "seconds"} <= set(rows[0])
    model, _ = load_model(res.best_checkpoint)
    with torch.no_grad():
        p = torch.sigmoid(model(torch.from_numpy(d["vx"])[:, None])).numpy().ravel()
    assert roc_auc(p, d["vy"]) == pytest.approx(ckpt.config.training["metrics"]["auc"], abs=1e-5)


def test_training_is_deterministic_on_cpu(
    tmp_path: Path, classifier_patch_set: dict[str, Any], tiny_classifier_config: ModelConfig
) -> None:
    d = classifier_patch_set
    runs = [
        train_classifier_on_patches(
            d["x"],
            d["y"],
            d["vx"],
            d["vy"],
            tmp_path / str(i),
            tiny_classifier_config,
            _cfg(epochs=2),
        )
        for i in range(2)
    ]
    assert [h["train_loss"] for h in runs[0].history] == [h["train_loss"] for h in runs[1].history]


def test_resume_continues_where_it_stopped(
    tmp_path: Path, classifier_patch_set: dict[str, Any], tiny_classifier_config: ModelConfig
) -> None:
    d = classifier_patch_set
    args = (d["x"], d["y"], d["vx"], d["vy"], tmp_path, tiny_classifier_config)
    first = train_classifier_on_patches(*args, _cfg(epochs=2))
    assert first.epochs_run == 2
    resumed = train_classifier_on_patches(*args, _cfg(epochs=4, resume=True))
    assert [int(h["epoch"]) for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[:2] == first.history
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert len(rows) == 4


def test_early_stopping(tmp_path: Path, tiny_classifier_config: ModelConfig) -> None:
    rng = np.random.default_rng(5)
    x = rng.random((32, 16, 16, 16)).astype(np.float32)
    y = (rng.random(32) > 0.5).astype(np.float32)  # pure noise labels: no progress
    res = train_classifier_on_patches(
        x, y, x[:8], y[:8], tmp_path, tiny_classifier_config, _cfg(epochs=30, patience=2, lr=1e-6)
    )
    assert res.stopped_early
    assert res.epochs_run < 30
    assert res.epochs_run - res.best_epoch == 2


def test_segmenter_training_reaches_useful_dice(
    tmp_path: Path, tiny_unet_config: ModelConfig, make_sphere_patches: Any
) -> None:
    rng = np.random.default_rng(1)
    x, m = make_sphere_patches(40, rng, True)
    vx, vm = make_sphere_patches(8, rng, True)
    res = train_segmenter_on_patches(
        x,
        m,
        vx,
        vm,
        tmp_path,
        tiny_unet_config,
        _cfg(epochs=6, batch_size=8, lr=1e-2),
        augment=False,
    )
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert res.best_score > 0.6


def test_metrics_against_hand_computed_values() -> None:
    assert roc_auc([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0]) == pytest.approx(0.75)
    assert roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    # 2 scans; negatives 0.9, 0.7, 0.2, 0.1; positives 0.8, 0.3
    # rate 1/8, 1/4: 0 FPs allowed -> thr 0.9 -> sens 0; 1/2: 1 FP -> thr 0.7 -> sens 0.5;
    # 1: 2 FPs -> thr 0.2 -> 1.0; 2, 4, 8: all -> 1.0  => mean (0+0+0.5+1+1+1+1)/7
    cpm = patch_cpm([0.9, 0.7, 0.2, 0.1, 0.8, 0.3], [0, 0, 0, 0, 1, 1], n_scans=2)
    assert cpm == pytest.approx(4.5 / 7)
    assert dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == pytest.approx(2 / 3)
