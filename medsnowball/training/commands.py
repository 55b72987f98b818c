"""Command functions behind ``medsnowball train classifier|segmenter``, ``eval``, ``export``.

Plain functions with typed arguments: the CLI registers them; notebooks call them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from medsnowball.core.errors import ConfigError
from medsnowball.models.config import (
    ModelConfig,
    PatchSpec,
    default_fp_classifier_config,
    default_nodule_unet_config,
)
from medsnowball.models.export import export_model
from medsnowball.training.augment import (
    PatchDataset,
    classifier_augmentation,
    segmentation_augmentation,
)
from medsnowball.training.datalist import read_datalist, split_cases
from medsnowball.training.loop import TrainConfig, TrainResult, fit
from medsnowball.training.metrics import dice, patch_cpm, roc_auc
from medsnowball.training.patch_data import (
    TrainingCase,
    classifier_patches,
    load_training_case,
    segmentation_patches,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

logger = logging.getLogger(__name__)


def _predict(
    model: nn.Module, images: NDArray[Any], device: torch.device, batch_size: int = 64
) -> NDArray[np.float32]:
    import torch

    outs = []
    for s in range(0, len(images), batch_size):
        x = torch.from_numpy(np.asarray(images[s : s + batch_size], dtype=np.float32))[:, None]
        outs.append(torch.sigmoid(model(x.to(device)).float()).cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def _load_cases(items: Sequence[dict[str, Any]]) -> list[TrainingCase]:
    cases = []
    for i, item in enumerate(items):
        cases.append(load_training_case(item))
        logger.info("loaded case %d/%d", i + 1, len(items))
    return cases


def _splits(datalist: str | os.PathLike[str], seed: int) -> tuple[list[Any], list[Any]]:
    dl = read_datalist(datalist)
    train, val = dl["training"], dl["validation"]
    if not train:
        raise ConfigError(f"datalist {datalist} has no 'training' items.")
    if not val:
        keys = [str(i) for i in range(len(train))]
        tr, va = split_cases(keys, 0.2, seed)
        train, val = [train[int(k)] for k in tr], [train[int(k)] for k in va]
        logger.info("no validation split in %s: holding out %d case(s)", datalist, len(val))
    return train, val


def classifier_validation(
    images: NDArray[Any], labels: NDArray[Any], n_scans: int
) -> Callable[[nn.Module, torch.device], dict[str, float]]:
    """Validation function: patch CPM (selection score, AUC breaks ties), AUC, accuracy.

    CPM rewards sensitivity at few false positives per scan, the operating range of a
    false-positive reducer; AUC is dominated by the many easy negatives.
    """

    def validate(model: nn.Module, device: torch.device) -> dict[str, float]:
        p = _predict(model, images, device).reshape(-1)
        auc = roc_auc(p, labels)
        cpm = patch_cpm(p, labels, n_scans)
        return {
            "score": cpm + 0.01 * auc,
            "auc": auc,
            "cpm": cpm,
            "accuracy": float(np.mean((p > 0.5) == (labels > 0))),
        }

    return validate


def segmenter_validation(
    images: NDArray[Any], masks: NDArray[Any], threshold: float = 0.5
) -> Callable[[nn.Module, torch.device], dict[str, float]]:
    """Validation function: mean Dice over patches (the selection score)."""

    def validate(model: nn.Module, device: torch.device) -> dict[str, float]:
        p = _predict(model, images, device, batch_size=8)[:, 0]
        d = [dice(pi > threshold, mi > 0) for pi, mi in zip(p, masks, strict=True)]
        return {"score": float(np.mean(d)) if d else float("nan"), "dice": float(np.mean(d))}

    return validate


def train_classifier_on_patches(
    train_images: NDArray[Any],
    train_labels: NDArray[Any],
    val_images: NDArray[Any],
    val_labels: NDArray[Any],
    out_dir: str | os.PathLike[str],
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    n_val_scans: int = 1,
    augment: bool = True,
) -> TrainResult:
    """Train the FP classifier on in-memory patches (see :func:`train_classifier`).

    Args:
        train_images: ``(N, *patch.size_zyx)`` patches in [0, 1].
        train_labels: ``(N,)`` 1 nodule / 0 not.
        val_images: Validation patches.
        val_labels: Validation labels.
        out_dir: Output folder.
        model_config: Architecture and patch contract (default 32^3 at 1 mm).
        train_config: Optimisation settings.
        n_val_scans: Scans the validation patches come from (for the CPM estimate).
        augment: Apply MONAI augmentation to training patches.

    Returns:
        :class:`TrainResult` (best checkpoint: ``out_dir/best.safetensors``).
    """
    import torch

    from medsnowball.models.networks import build_fp_classifier

    mc = model_config or default_fp_classifier_config()
    tc = train_config or TrainConfig()
    if tuple(train_images.shape[1:]) != mc.patch.size_zyx:
        raise ConfigError(
            f"patches have shape {train_images.shape[1:]}, the model expects {mc.patch.size_zyx}."
        )
    n_pos = int(np.sum(train_labels > 0))
    n_neg = len(train_labels) - n_pos
    pos_weight = torch.tensor([min(20.0, n_neg / max(1, n_pos))])

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits.float(),
            target.float().reshape(logits.shape),
            pos_weight=pos_weight.to(logits.device),
        )

    ds = PatchDataset(
        train_images, train_labels, classifier_augmentation(tc.seed) if augment else None
    )
    seed_model(tc.seed)
    model = build_fp_classifier(mc)
    return fit(
        model,
        mc,
        ds,  # type: ignore[arg-type]
        loss_fn,
        classifier_validation(val_images, val_labels, n_val_scans),
        out_dir,
        tc,
    )


def train_segmenter_on_patches(
    train_images: NDArray[Any],
    train_masks: NDArray[Any],
    val_images: NDArray[Any],
    val_masks: NDArray[Any],
    out_dir: str | os.PathLike[str],
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    augment: bool = True,
) -> TrainResult:
    """Train the nodule U-Net on in-memory patch / mask pairs (see :func:`train_segmenter`).

    Loss: MONAI ``DiceCELoss`` on sigmoid outputs. Selection score: mean validation Dice.
    """
    from monai.losses import DiceCELoss

    from medsnowball.models.networks import build_nodule_unet

    mc = model_config or default_nodule_unet_config()
    tc = train_config or TrainConfig()
    if tuple(train_images.shape[1:]) != mc.patch.size_zyx:
        raise ConfigError(
            f"patches have shape {train_images.shape[1:]}, the model expects {mc.patch.size_zyx}."
        )
    crit = DiceCELoss(sigmoid=True)

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return crit(logits.float(), target.float())  # type: ignore[no-any-return]

    ds = PatchDataset(
        train_images, train_masks, segmentation_augmentation(tc.seed) if augment else None
    )
    seed_model(tc.seed)
    model = build_nodule_unet(mc)
    return fit(
        model,
        mc,
        ds,  # type: ignore[arg-type]
        loss_fn,
        segmenter_validation(val_images, val_masks, mc.threshold),
        out_dir,
        tc,
    )


def seed_model(seed: int) -> None:
    """Seed torch before building a network so that initial weights are reproducible."""
    import torch

    torch.manual_seed(seed)


def _patch_model_config(
    base: ModelConfig,
    patch_size: int,
    spacing_mm: float,
    datalist: str | os.PathLike[str],
    epochs: int,
    seed: int,
    lr: float,
) -> ModelConfig:
    """``base`` (a packaged model's default) with a cubic patch and the run's provenance."""
    return dataclasses.replace(
        base,
        patch=PatchSpec((patch_size,) * 3, (spacing_mm,) * 3),  # type: ignore[arg-type]
        training={"datalist": str(datalist), "epochs": epochs, "seed": seed, "lr": lr},
    )


def train_classifier(
    datalist: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    patch_size: int = 32,
    spacing_mm: float = 1.0,
    negatives_per_case: int = 40,
    positive_copies: int = 6,
    patience: int = 5,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    threads: int = 0,
    amp: bool = True,
) -> TrainResult:
    """Train the false-positive reduction CNN from a datalist (``medsnowball train classifier``).

    Args:
        datalist: MONAI detection datalist JSON (see :mod:`medsnowball.training.datalist`).
        out_dir: Output folder: ``best.safetensors``, ``last_state.pt``, ``metrics.csv``.
        epochs: Maximum epochs.
        batch_size: Patches per step.
        lr: Learning rate.
        patch_size: Cubic patch size in voxels.
        spacing_mm: Isotropic patch spacing in mm.
        negatives_per_case: Negative patches per scan.
        positive_copies: Patches per nodule (with jitter).
        patience: Early-stopping patience (epochs).
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: Seed of sampling, augmentation and initialisation.
        resume: Continue from ``out_dir/last_state.pt``.
        threads: CPU threads (0 = torch default).
        amp: Mixed precision on CUDA.

    Returns:
        :class:`TrainResult`.
    """
    mc = _patch_model_config(
        default_fp_classifier_config(), patch_size, spacing_mm, datalist, epochs, seed, lr
    )
    train_items, val_items = _splits(datalist, seed)
    tr = classifier_patches(
        _load_cases(train_items), mc.patch, negatives_per_case, positive_copies, seed
    )
    va = classifier_patches(_load_cases(val_items), mc.patch, negatives_per_case, 1, seed + 1)
    tc = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        seed=seed,
        device=device,
        amp=amp,
        threads=threads,
        resume=resume,
    )
    return train_classifier_on_patches(
        tr[0], tr[1], va[0], va[1], out_dir, mc, tc, n_val_scans=len(val_items)
    )


def train_segmenter(
    datalist: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    epochs: int = 30,
    batch_size: int = 8,
    lr: float = 2e-3,
    patch_size: int = 32,
    spacing_mm: float = 0.8,
    copies: int = 3,
    patience: int = 6,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    threads: int = 0,
    amp: bool = True,
) -> TrainResult:
    """Train the nodule U-Net from a datalist whose items carry ``"seg"`` masks.

    Args:
        datalist: Datalist JSON; items need ``"seg"`` (instance labels) and
            ``"seg_label"``.
        out_dir: Output folder.
        epochs: Maximum epochs.
        batch_size: Patches per step.
        lr: Learning rate.
        patch_size: Cubic patch size (divisible by 8).
        spacing_mm: Isotropic patch spacing in mm.
        copies: Patches per nodule (with jitter).
        patience: Early-stopping patience.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: Seed.
        resume: Continue from ``out_dir/last_state.pt``.
        threads: CPU threads (0 = torch default).
        amp: Mixed precision on CUDA.

    Returns:
        :class:`TrainResult`.

    Raises:
        ConfigError: No item has a mask.
    """
    mc = _patch_model_config(
        default_nodule_unet_config(), patch_size, spacing_mm, datalist, epochs, seed, lr
    )
    train_items, val_items = _splits(datalist, seed)
    tr = segmentation_patches(_load_cases(train_items), mc.patch, copies, seed)
    va = segmentation_patches(_load_cases(val_items), mc.patch, 1, seed + 1)
    if len(tr[0]) == 0 or len(va[0]) == 0:
        raise ConfigError(
            f"datalist {datalist}: no nodule masks found (items need 'seg' and boxes) in the "
            "training and validation splits."
        )
    tc = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        seed=seed,
        device=device,
        amp=amp,
        threads=threads,
        resume=resume,
    )
    return train_segmenter_on_patches(tr[0], tr[1], va[0], va[1], out_dir, mc, tc)


def evaluate_model(
    checkpoint: str | os.PathLike[str],
    datalist: str | os.PathLike[str],
    split: str = "validation",
    negatives_per_case: int = 40,
    seed: int = 1,
    device: str = "auto",
) -> dict[str, float]:
    """Patch-level metrics of a checkpoint on a datalist split.

    Classifier: AUC, patch CPM, accuracy. U-Net: mean Dice.

    Raises:
        ConfigError: Unknown split or model kind.
    """
    import torch

    from medsnowball.models.checkpoint import load_model
    from medsnowball.models.inference import resolve_device

    dev = resolve_device(device)
    model, cfg = load_model(checkpoint, device=str(dev))
    dl = read_datalist(datalist)
    if split not in dl:
        raise ConfigError(f"split must be 'training' or 'validation', got {split!r}.")
    cases = _load_cases(dl[split])
    with torch.no_grad():
        if cfg.kind == "fp_classifier":
            x, y, _ = classifier_patches(cases, cfg.patch, negatives_per_case, 1, seed)
            return classifier_validation(x, y, len(cases))(model, dev)
        if cfg.kind == "nodule_unet":
            xs, ms = segmentation_patches(cases, cfg.patch, 1, seed)
            return segmenter_validation(xs, ms, cfg.threshold)(model, dev)
    raise ConfigError(f"evaluate_model does not handle {cfg.kind!r} checkpoints.")


__all__ = [
    "evaluate_model",
    "export_model",
    "train_classifier",
    "train_classifier_on_patches",
    "train_segmenter",
    "train_segmenter_on_patches",
]
