"""Training of the MONAI RetinaNet nodule detector (``medsnowball train detector``).

The recipe is the MONAI model-zoo ``lung_nodule_ct_detection`` bundle's ``train.json``:

* **data**: every CT is put in RAS orientation, resampled to the model's spacing
  (0.703125 x 0.703125 x 1.25 mm), HU -1024..300 scaled to 0..1 and padded to at least one
  training patch; the datalist's world-coordinate boxes (LPS, centre + size) become
  voxel boxes of the resampled image (``ConvertBoxToStandardModed`` +
  ``AffineBoxToImageCoordinated``);
* **augmentation**: ``batch_size`` patches per CT from ``RandCropBoxByPosNegLabeld``
  (half of them hold a whole nodule), ``RandZoomBoxd``, flips on the three axes,
  ``RandRotateBox90d`` in-plane, small rotations through box masks
  (``BoxToMaskd`` -> ``RandRotated`` -> ``MaskToBoxd``), noise, smoothing, intensity
  scale / shift and contrast;
* **detector**: ``RetinaNetDetector`` with the ATSS matcher (4 candidates, centre not
  required inside the box), the hard-negative sampler (64 anchors per image, 30 %
  positives, pool 20, at least 16 negatives), loss = classification + box regression;
* **optimiser**: SGD (momentum 0.9, Nesterov, weight decay 3e-5), lr 1e-2 warmed up
  linearly over 10 epochs, then divided by 10 every 150 epochs.

Validation (every ``val_every`` epochs and after the last one) runs the sliding-window
inference of :class:`~medsnowball.models.retinanet_inference.RetinaNetNoduleDetector` on
the validation CTs and scores it with the LUNA16 matching, FROC and CPM of
:mod:`medsnowball.evaluation`; the weights of the best CPM (ties broken by the
sensitivity) go to ``best.safetensors`` (tensors plus the JSON model config),
``last_state.pt`` allows ``resume``, ``metrics.csv`` (and TensorBoard) get one row per
epoch, and training stops after ``patience`` validations without a better score.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medsnowball.core.errors import CheckpointError, ConfigError
from medsnowball.core.volume import CTVolume
from medsnowball.models.checkpoint import (
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from medsnowball.models.config import ModelConfig
from medsnowball.models.inference import autocast_context
from medsnowball.models.retinanet import default_retinanet_config
from medsnowball.training.datalist import read_datalist, split_cases
from medsnowball.training.detector_data import (
    ATSS_CANDIDATES,
    BUNDLE_TRAIN_PATCH_ZYX,
    HNM_BATCH_PER_IMAGE,
    HNM_MIN_NEG,
    HNM_POOL_SIZE,
    HNM_POSITIVE_FRACTION,
    SGD_MOMENTUM,
    SGD_WEIGHT_DECAY,
    VAL_KEYS,
    _detection_item,
    detector_augmentation,
    detector_preprocessing,
    small_retinanet_config,
)
from medsnowball.training.loop import (
    BEST_NAME,
    LAST_STATE_NAME,
    TrainResult,
    _MetricsLog,
    prepare_run,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medsnowball.models.retinanet_inference import RetinaNetNoduleDetector

logger = logging.getLogger(__name__)


def configure_for_training(detector: Any) -> Any:
    """Give a ``RetinaNetDetector`` the bundle's ATSS matcher and hard-negative sampler."""
    detector.set_atss_matcher(num_candidates=ATSS_CANDIDATES, center_in_gt=False)
    detector.set_hard_negative_sampler(
        batch_size_per_image=HNM_BATCH_PER_IMAGE,
        positive_fraction=HNM_POSITIVE_FRACTION,
        pool_size=HNM_POOL_SIZE,
        min_neg=HNM_MIN_NEG,
    )
    return detector


ValidationCase = tuple["str | CTVolume", list[Any]]


def validation_cases(items: Sequence[dict[str, Any]], preload: bool) -> list[ValidationCase]:
    """``(image path or loaded CT, truth nodules)`` per datalist item.

    Truth nodules are :class:`~medsnowball.evaluation.TruthNodule` at the box centre with
    the mean box size as diameter (LUNA16 boxes are cubes of the nodule diameter).
    """
    from medsnowball.evaluation import TruthNodule
    from medsnowball.io.cases import load_ct

    out: list[ValidationCase] = []
    for item in items:
        truth = [
            TruthNodule((float(b[0]), float(b[1]), float(b[2])), float(np.mean(b[3:6])))
            for b in item.get("box", [])
        ]
        out.append((load_ct(item["image"]) if preload else str(item["image"]), truth))
    return out


def evaluate_detections(
    runner: RetinaNetNoduleDetector, cases: Sequence[ValidationCase]
) -> dict[str, float]:
    """Detect on every case and score with LUNA16 matching: CPM, sensitivity, FP/scan.

    Returns:
        ``{"score", "cpm", "sensitivity" (share of nodules hit by any detection),
        "fp_per_scan", "seconds"}``; the selection score is ``cpm + 0.01 * sensitivity``
        (the sensitivity breaks ties, e.g. between early epochs whose CPM is still 0).
    """
    from medsnowball.evaluation import froc, match_candidates
    from medsnowball.io.cases import load_ct

    t0 = time.perf_counter()
    matches = []
    for image, truth in cases:
        volume = image if isinstance(image, CTVolume) else load_ct(image)
        matches.append(match_candidates(runner.detect(volume), truth))
    res = froc(matches)
    sensitivity = res.n_detected / max(1, res.n_nodules)
    return {
        "score": res.cpm + 0.01 * sensitivity,
        "cpm": res.cpm,
        "sensitivity": sensitivity,
        "fp_per_scan": res.n_false_positives / max(1, res.n_scans),
        "seconds": time.perf_counter() - t0,
    }


def _splits(
    datalist: str | os.PathLike[str], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dl = read_datalist(datalist)
    train, val = dl["training"], dl["validation"]
    if not train:
        raise ConfigError(f"datalist {datalist} has no 'training' items.")
    if not val:
        keys = [str(i) for i in range(len(train))]
        tr, va = split_cases(keys, 0.2, seed)
        train, val = [train[int(k)] for k in tr], [train[int(k)] for k in va]
        logger.info("no validation split in %s: holding out %d case(s)", datalist, len(val))
    if not any(item.get("box") for item in val):
        raise ConfigError(
            f"datalist {datalist}: the validation scans hold no nodule box, so the CPM that "
            "selects the best epoch is undefined; add annotated scans to 'validation'."
        )
    return train, val


def _check_patch(patch_zyx: Sequence[int], config: ModelConfig) -> tuple[int, int, int]:
    patch = tuple(int(v) for v in patch_zyx)
    div_zyx = tuple(int(v) for v in config.extra.get("size_divisible_xyz", [16, 16, 8]))[::-1]
    if len(patch) != 3 or any(p < d or p % d for p, d in zip(patch, div_zyx, strict=True)):
        raise ConfigError(
            f"detector patch size (z, y, x) {patch} must be positive multiples of {div_zyx} "
            "(the network's size_divisible)."
        )
    return patch  # type: ignore[return-value]


def _lr_factor(warmup_epochs: int, step_epochs: int) -> Callable[[int], float]:
    """Linear warm-up over ``warmup_epochs``, then x0.1 every ``step_epochs`` (bundle)."""

    def factor(epoch: int) -> float:
        if epoch < warmup_epochs:
            return (epoch + 1) / warmup_epochs
        return 0.1 ** ((epoch - warmup_epochs) // max(1, step_epochs))

    return factor


def _plain(t: Any) -> torch.Tensor:
    return t.as_tensor() if hasattr(t, "as_tensor") else t  # type: ignore[no-any-return]


@dataclasses.dataclass
class _Progress:
    """Where a run stands (kept in ``last_state.pt``)."""

    epoch: int = 0
    best: float = -math.inf
    best_epoch: int = 0
    bad: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


def _resume(state_path: Path, network: Any, opt: Any, sched: Any, scaler: Any) -> _Progress:
    st = load_training_state(state_path)
    try:
        network.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        scaler.load_state_dict(st["scaler"])
        prog = _Progress(
            epoch=int(st["epoch"]),
            best=float(st["best"]),
            best_epoch=int(st["best_epoch"]),
            bad=int(st["bad_epochs"]),
            history=[dict(h) for h in st.get("history", [])],
        )
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"cannot resume from {state_path}: {exc}. It belongs to another model or "
            "settings; delete it or train into a new folder."
        ) from exc
    logger.info("resumed from %s at epoch %d (best score %.4f)", state_path, prog.epoch, prog.best)
    return prog


def _save_state(
    path: Path, network: Any, opt: Any, sched: Any, scaler: Any, prog: _Progress
) -> None:
    save_training_state(
        path,
        {
            "model": network.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": prog.epoch,
            "best": prog.best,
            "best_epoch": prog.best_epoch,
            "bad_epochs": prog.bad,
            "history": prog.history,
        },
    )


def _train_epoch(detector: Any, loader: Any, opt: Any, scaler: Any, dev: Any) -> dict[str, float]:
    """One pass over the training scans; mean losses and step time."""
    import torch

    detector.train()
    use_amp = bool(scaler.is_enabled())
    sums = {"loss": 0.0, "cls": 0.0, "box": 0.0}
    steps, skipped, t_steps = 0, 0, 0.0
    for batch in loader:  # one scan per batch: a list of patch dicts
        samples = [s for item in batch for s in (item if isinstance(item, list) else [item])]
        ts = time.perf_counter()
        images = [_plain(s["image"]).to(dev) for s in samples]
        targets = [
            {"box": _plain(s["box"]).float().to(dev), "label": _plain(s["label"]).long().to(dev)}
            for s in samples
        ]
        opt.zero_grad(set_to_none=True)
        with autocast_context(dev, use_amp):
            losses = detector(images, targets)
        cls_loss = losses[detector.cls_key].float()
        box_loss = losses[detector.box_reg_key].float()
        loss = cls_loss + box_loss
        if not torch.isfinite(loss):
            skipped += 1
            logger.warning("non-finite detector loss: step skipped")
            continue
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        t_steps += time.perf_counter() - ts
        steps += 1
        sums["loss"] += float(loss.detach())
        sums["cls"] += float(cls_loss.detach())
        sums["box"] += float(box_loss.detach())
    n = max(1, steps)
    return {
        "train_loss": sums["loss"] / n,
        "train_cls_loss": sums["cls"] / n,
        "train_box_loss": sums["box"] / n,
        "lr": float(opt.param_groups[0]["lr"]),
        "steps": float(steps),
        "skipped_steps": float(skipped),
        "seconds_per_step": t_steps / n,
    }


def train_detector(
    datalist: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    epochs: int = 300,
    batch_size: int = 4,
    patch_size_zyx: Sequence[int] = BUNDLE_TRAIN_PATCH_ZYX,
    lr: float = 1e-2,
    val_every: int = 10,
    patience: int = 10,
    warmup_epochs: int = 10,
    lr_step_epochs: int = 150,
    seed: int = 0,
    device: str = "auto",
    amp: bool = True,
    threads: int = 0,
    num_workers: int = 0,
    resume: bool = False,
    cache: bool = False,
    augment: bool = True,
    init_weights: str | os.PathLike[str] | None = None,
    model_config: ModelConfig | None = None,
    tensorboard: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train the RetinaNet detector from a datalist (``medsnowball train detector``).

    Args:
        datalist: MONAI detection datalist JSON (world LPS boxes, see
            :mod:`medsnowball.training.datalist`); without a ``validation`` split, 20 % of
            the training scans are held out.
        out_dir: Output folder: ``best.safetensors``, ``last_state.pt``, ``metrics.csv``.
        epochs: Maximum epochs (one pass over the training scans each).
        batch_size: Patches per step, all cut from one scan (the bundle's 4).
        patch_size_zyx: Training patch (voxels, z y x), multiples of the network's
            ``size_divisible`` ((8, 16, 16) for the bundle).
        lr: Peak SGD learning rate.
        val_every: Validate every this many epochs (and after the last one).
        patience: Stop after this many validations without a better CPM.
        warmup_epochs: Linear learning-rate warm-up (0: none).
        lr_step_epochs: Divide the learning rate by 10 every this many epochs after warm-up.
        seed: Seed of initialisation, sampling and augmentation.
        device: ``auto``, ``cpu`` or ``cuda[:N]`` (under torchrun: ``LOCAL_RANK``'s GPU).
        amp: Mixed precision on CUDA (ignored on CPU).
        threads: CPU threads for torch (0: torch's default).
        num_workers: DataLoader worker processes (0: in the main process, deterministic).
        resume: Continue from ``out_dir/last_state.pt`` when present.
        cache: Keep the preprocessed scans in memory (CacheDataset) and the validation
            CTs loaded; needs RAM for the whole resampled training set.
        augment: Apply the bundle's random augmentation after the box-aware crops
            (``False``: crops only, e.g. for smoke tests).
        init_weights: Start from these weights (the bundle's ``models/model.pt`` or one of
            our ``.safetensors``) instead of a random initialisation (fine-tuning).
        model_config: Architecture, spacing and HU window (default: the bundle's, see
            :func:`~medsnowball.models.retinanet.default_retinanet_config`).
        tensorboard: Also write TensorBoard scalars when available.
        on_epoch: Called with each epoch's metrics row.

    Returns:
        :class:`~medsnowball.training.loop.TrainResult` (``best_score``: CPM + 0.01 x
        sensitivity, see :func:`evaluate_detections`).

    Raises:
        ConfigError: Bad datalist, patch size or settings.
        CheckpointError: ``init_weights`` or the resume state do not fit the network.
        MissingDependencyError: torchvision is not installed.
    """
    import torch
    from monai.data import CacheDataset, DataLoader, Dataset
    from monai.data.utils import no_collation
    from monai.transforms import Compose

    from medsnowball.models.retinanet import (
        build_retinanet_detector,
        build_retinanet_network,
        load_retinanet_weights,
    )
    from medsnowball.models.retinanet_inference import RetinaNetNoduleDetector

    if min(epochs, batch_size, val_every, patience) < 1 or lr <= 0 or warmup_epochs < 0:
        raise ConfigError(
            "train_detector needs epochs, batch_size, val_every, patience >= 1, lr > 0 and "
            f"warmup_epochs >= 0; got {epochs}, {batch_size}, {val_every}, {patience}, {lr}, "
            f"{warmup_epochs}."
        )
    base = model_config or default_retinanet_config()
    if base.kind != "retinanet":
        raise ConfigError(f"train_detector needs a 'retinanet' model config, got {base.kind!r}.")
    patch_zyx = _check_patch(patch_size_zyx, base)
    patch_xyz = patch_zyx[::-1]
    train_items, val_items = _splits(datalist, seed)
    mc = dataclasses.replace(
        base,
        training={
            "datalist": str(datalist),
            "epochs": epochs,
            "batch_size": batch_size,
            "patch_size_zyx": list(patch_zyx),
            "lr": lr,
            "seed": seed,
            "init_weights": None if init_weights is None else str(init_weights),
            "recipe": "MONAI lung_nodule_ct_detection train.json",
        },
    )

    t_start = time.perf_counter()
    prev_det = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    dist_info, out, dev = prepare_run(out_dir, seed=seed, device=device, threads=threads)
    use_amp = amp and dev.type == "cuda"

    network = build_retinanet_network(mc)
    if init_weights is not None:
        load_retinanet_weights(network, init_weights)
    network.to(dev)
    detector = configure_for_training(build_retinanet_detector(mc, network=network))
    runner = RetinaNetNoduleDetector(config=mc, device=str(dev), amp=use_amp, detector=detector)
    val_cases = validation_cases(val_items, preload=cache) if dist_info.is_main else []

    pre = detector_preprocessing(mc, pad_to_xyz=patch_xyz)
    transform = Compose([*pre, *detector_augmentation(patch_xyz, batch_size, augment)])
    transform.set_random_state(seed=seed + dist_info.rank)
    data = [_detection_item(i) for i in train_items]
    ds: Any = (
        CacheDataset(data, transform, cache_rate=1.0, num_workers=None)
        if cache
        else Dataset(data, transform)
    )
    sampler: Any = None
    if dist_info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data.distributed import DistributedSampler

        ids = [dev.index] if dev.type == "cuda" else None
        detector.network = DistributedDataParallel(network, device_ids=ids)
        sampler = DistributedSampler(ds, shuffle=True, seed=seed)
    loader = DataLoader(
        ds,
        batch_size=1,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=no_collation,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.SGD(
        network.parameters(),
        lr=lr,
        momentum=SGD_MOMENTUM,
        weight_decay=SGD_WEIGHT_DECAY,
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(warmup_epochs, lr_step_epochs))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    state_path = out / LAST_STATE_NAME
    prog = _Progress()
    if resume and state_path.is_file():
        prog = _resume(state_path, network, opt, sched, scaler)
    log = _MetricsLog(out, dist_info.is_main, tensorboard)
    best_path = out / BEST_NAME if prog.best_epoch > 0 else None
    stopped = False
    try:
        for epoch in range(prog.epoch + 1, epochs + 1):
            if prog.bad >= patience:
                stopped = True
                break
            t0 = time.perf_counter()
            if sampler is not None:
                sampler.set_epoch(epoch)
            row = {"epoch": float(epoch), **_train_epoch(detector, loader, opt, scaler, dev)}
            sched.step()
            row.update({f"val_{k}": math.nan for k in VAL_KEYS})
            if dist_info.is_main and (epoch % val_every == 0 or epoch == epochs):
                wrapped, detector.network = detector.network, network  # no DDP collectives
                detector.eval()
                try:
                    metrics = evaluate_detections(runner, val_cases)
                finally:
                    detector.network = wrapped
                    # anchors made under inference mode must not enter a training step
                    detector.anchors, detector.previous_image_shape = None, None
                row.update({f"val_{k}": float(v) for k, v in metrics.items()})
                score = float(metrics["score"])
                if math.isfinite(score) and score > prog.best:
                    prog.best, prog.best_epoch, prog.bad = score, epoch, 0
                    extra = {"best_epoch": epoch, "best_score": score, "metrics": metrics}
                    cfg = dataclasses.replace(mc, training={**mc.training, **extra})
                    best_path = save_checkpoint(out / BEST_NAME, network, cfg)
                else:
                    prog.bad += 1
            if dist_info.world_size > 1:
                import torch.distributed as dist

                flag = torch.tensor([prog.bad], device=dev)
                dist.broadcast(flag, src=0)  # every rank stops early together
                prog.bad = int(flag.item())
            row["seconds"] = time.perf_counter() - t0
            prog.epoch = epoch
            prog.history.append(row)
            log.write(row)
            logger.info(
                "epoch %d: loss %.4f (cls %.4f, box %.4f), %.1f s/step, val CPM %.4f, %.1f s",
                epoch,
                row["train_loss"],
                row["train_cls_loss"],
                row["train_box_loss"],
                row["seconds_per_step"],
                row["val_cpm"],
                row["seconds"],
            )
            if dist_info.is_main:
                _save_state(state_path, network, opt, sched, scaler, prog)
            if on_epoch is not None:
                on_epoch(row)
    finally:
        log.close()
        torch.use_deterministic_algorithms(prev_det[0], warn_only=prev_det[1])
    return TrainResult(
        best_checkpoint=best_path,
        best_score=prog.best,
        best_epoch=prog.best_epoch,
        epochs_run=len(prog.history),
        history=prog.history,
        seconds=time.perf_counter() - t_start,
        stopped_early=stopped,
    )


def load_trained_detector(
    checkpoint: str | os.PathLike[str], device: str = "auto", amp: bool = True
) -> RetinaNetNoduleDetector:
    """A :class:`RetinaNetNoduleDetector` for a checkpoint written by :func:`train_detector`.

    The network is rebuilt from the config stored in the checkpoint (so reduced or
    re-spaced detectors load too).

    Raises:
        CheckpointError: Missing, unsafe or non-RetinaNet checkpoint.
    """
    from medsnowball.models.retinanet_inference import RetinaNetNoduleDetector

    if not str(checkpoint).endswith(".safetensors"):
        raise CheckpointError(
            f"{checkpoint} is not a medsnowball detector checkpoint (.safetensors); for the "
            "bundle's model.pt use RetinaNetNoduleDetector(weights=...)."
        )
    return RetinaNetNoduleDetector(weights=checkpoint, device=device, amp=amp)


def evaluate_detector(
    checkpoint: str | os.PathLike[str],
    datalist: str | os.PathLike[str],
    split: str = "validation",
    device: str = "auto",
    amp: bool = True,
) -> dict[str, float]:
    """CPM, sensitivity and false positives per scan of a trained detector on a split.

    Raises:
        ConfigError: Unknown split.
        CheckpointError: See :func:`load_trained_detector`.
    """
    dl = read_datalist(datalist)
    if split not in dl:
        raise ConfigError(f"split must be 'training' or 'validation', got {split!r}.")
    runner = load_trained_detector(checkpoint, device=device, amp=amp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return evaluate_detections(runner, validation_cases(dl[split], preload=False))


__all__ = [
    "BUNDLE_TRAIN_PATCH_ZYX",
    "configure_for_training",
    "detector_augmentation",
    "detector_preprocessing",
    "evaluate_detections",
    "evaluate_detector",
    "load_trained_detector",
    "small_retinanet_config",
    "train_detector",
    "validation_cases",
]
