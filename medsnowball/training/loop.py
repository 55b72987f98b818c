"""A generic, resumable training loop (CPU, CUDA with AMP, DDP under torchrun).

Per epoch: one pass over the training data, a validation call returning metrics
(``"score"``: higher is better), a row in ``metrics.csv`` (and TensorBoard scalars
when ``torch.utils.tensorboard`` works), ``best.safetensors`` when the score improves,
and ``last_state.pt`` (model, optimiser, epoch, best score; tensors and plain values
only) for ``resume``. Training stops early after ``patience`` epochs without
improvement.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medsnowball.core.errors import CheckpointError
from medsnowball.models.checkpoint import (
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from medsnowball.models.config import ModelConfig
from medsnowball.models.inference import autocast_context, resolve_device

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn
    from torch.utils.data import Dataset

logger = logging.getLogger(__name__)

BEST_NAME = "best.safetensors"
LAST_STATE_NAME = "last_state.pt"
METRICS_NAME = "metrics.csv"

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
ValidateFn = Callable[["nn.Module", "torch.device"], dict[str, float]]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: Maximum epochs.
        batch_size: Patches per step (per process under DDP).
        lr: AdamW learning rate (cosine-decayed to 5 % over ``epochs``).
        weight_decay: AdamW weight decay.
        patience: Stop after this many epochs without a better validation score.
        seed: Seed of torch, numpy, random and MONAI.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"`` (DDP uses ``LOCAL_RANK``).
        amp: Mixed precision on CUDA.
        num_workers: DataLoader workers (0 = in the main process, deterministic).
        threads: CPU threads for torch (0 = leave torch's default).
        resume: Continue from ``last_state.pt`` in the output folder when present.
        deterministic: ``torch.use_deterministic_algorithms`` (warn-only on CUDA ops
            without a deterministic kernel).
        tensorboard: Also write TensorBoard scalars when available.
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    threads: int = 0
    resume: bool = False
    deterministic: bool = True
    tensorboard: bool = True


@dataclass
class TrainResult:
    """Outcome of :func:`fit`.

    Attributes:
        best_checkpoint: Path of the best weights (``None`` when no epoch ran).
        best_score: Best validation score.
        best_epoch: Epoch (1-based) of the best score.
        epochs_run: Epochs completed (including resumed ones).
        history: One metrics dict per epoch.
        seconds: Wall time of this call.
        stopped_early: Whether early stopping ended the run.
    """

    best_checkpoint: Path | None
    best_score: float
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


@dataclass(frozen=True)
class DistInfo:
    """Process placement under ``torchrun`` (rank 0 of 1 otherwise)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes files."""
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Initialise ``torch.distributed`` from torchrun's environment variables.

    With ``WORLD_SIZE`` unset or 1 nothing is initialised (single process).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def prepare_run(
    out_dir: str | os.PathLike[str],
    *,
    seed: int,
    device: str,
    threads: int,
    deterministic: bool = True,
) -> tuple[DistInfo, Path, torch.device]:
    """Start a training run: process placement, seeds, threads, output folder, device.

    Under ``torchrun`` with CUDA each process takes the GPU of its local rank; otherwise
    ``device`` is resolved (``"auto"`` picks CUDA when present). Only rank 0 creates
    ``out_dir``.

    Args:
        out_dir: Output folder of the run.
        seed: Base seed (each rank adds its rank).
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        threads: torch CPU threads (0 = torch's default).
        deterministic: Deterministic algorithms (see :func:`seed_everything`).

    Returns:
        ``(dist_info, out_dir as Path, torch device)``.
    """
    import torch

    dist_info = init_distributed()
    seed_everything(seed + dist_info.rank, deterministic)
    if threads > 0:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    if dist_info.world_size > 1 and torch.cuda.is_available():
        dev = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = resolve_device(device)
    return dist_info, out, dev


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy, torch and MONAI; request deterministic kernels."""
    import torch
    from monai.utils import set_determinism

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    set_determinism(seed=seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


class _MetricsLog:
    """metrics.csv (+ TensorBoard) writer on the main process."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.path = out_dir / METRICS_NAME
        self.enabled = enabled
        self.tb: Any = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
            except ImportError:
                logger.debug("TensorBoard not installed: metrics go to %s only", self.path)

    def write(self, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        keys = list(row)
        if not new:
            with open(self.path, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
            keys = header + [k for k in row if k not in header]
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, int(row["epoch"]))
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def fit(
    model: nn.Module,
    model_config: ModelConfig,
    train_dataset: Dataset[Any],
    loss_fn: LossFn,
    validate: ValidateFn,
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``model`` with AdamW; keep the best checkpoint by validation score.

    Args:
        model: The network (built from ``model_config``).
        model_config: Stored in every checkpoint (its ``training`` entry is updated with
            the epoch, score and metrics of the best model).
        train_dataset: Yields ``(input, target)`` tensors.
        loss_fn: ``(logits, target) -> scalar loss``.
        validate: ``(model in eval mode, device) -> metrics`` with a ``"score"`` key
            (higher is better); called on the main process only.
        out_dir: Output folder (best checkpoint, resume state, metrics.csv).
        config: Optimisation settings.
        on_epoch: Called with each epoch's metrics (e.g. progress display).

    Returns:
        :class:`TrainResult`.

    Raises:
        CheckpointError: ``resume`` with an unreadable or incompatible state file.
    """
    import torch
    from torch.utils.data import DataLoader

    t_start = time.perf_counter()
    prev_det = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    dist_info, out, device = prepare_run(
        out_dir,
        seed=config.seed,
        device=config.device,
        threads=config.threads,
        deterministic=config.deterministic,
    )
    model.to(device)
    net: nn.Module = model
    sampler: Any = None
    if dist_info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data.distributed import DistributedSampler

        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
        sampler = DistributedSampler(train_dataset, shuffle=True, seed=config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        train_dataset,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.num_workers,
        generator=gen,
        drop_last=len(train_dataset) > config.batch_size,  # type: ignore[arg-type]
        pin_memory=device.type == "cuda",
    )
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(1, config.epochs), eta_min=config.lr * 0.05
    )
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, best, best_epoch, bad = 0, -math.inf, 0, 0
    history: list[dict[str, float]] = []
    state_path = out / LAST_STATE_NAME
    if config.resume and state_path.is_file():
        st = load_training_state(state_path)
        try:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(
                f"cannot resume from {state_path}: {exc}. It belongs to another model or "
                "settings; delete it or train into a new folder."
            ) from exc
        start_epoch = int(st["epoch"])
        best, best_epoch, bad = float(st["best"]), int(st["best_epoch"]), int(st["bad_epochs"])
        history = [dict(h) for h in st.get("history", [])]
        logger.info("resumed from %s at epoch %d (best %.4f)", state_path, start_epoch, best)

    log = _MetricsLog(out, dist_info.is_main, config.tensorboard)
    best_path = out / BEST_NAME if best_epoch > 0 else None
    stopped = False
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            if bad >= config.patience:
                stopped = True
                break
            t0 = time.perf_counter()
            if sampler is not None:
                sampler.set_epoch(epoch)
            net.train()
            total, count = 0.0, 0
            for x, y in loader:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                with autocast_context(device, use_amp):
                    loss = loss_fn(net(x), y)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                total += float(loss.detach()) * len(x)
                count += len(x)
            sched.step()
            row: dict[str, float] = {
                "epoch": float(epoch),
                "train_loss": total / max(1, count),
                "lr": float(opt.param_groups[0]["lr"]),
            }
            if dist_info.is_main:
                model.eval()
                with torch.no_grad():
                    metrics = validate(model, device)
                row.update({f"val_{k}": float(v) for k, v in metrics.items()})
                score = float(metrics["score"])
                if math.isfinite(score) and score > best:
                    best, best_epoch, bad = score, epoch, 0
                    cfg = dataclasses.replace(
                        model_config,
                        training={
                            **model_config.training,
                            "best_epoch": epoch,
                            "best_score": score,
                            "metrics": {k: float(v) for k, v in metrics.items()},
                        },
                    )
                    best_path = save_checkpoint(out / BEST_NAME, model, cfg)
                else:
                    bad += 1
            if dist_info.world_size > 1:
                import torch.distributed as dist

                flag = torch.tensor([bad], device=device)
                dist.broadcast(flag, src=0)  # every rank stops early together
                bad = int(flag.item())
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            log.write(row)
            logger.info(
                "epoch %d: loss %.4f, score %s, %.1fs",
                epoch,
                row["train_loss"],
                f"{row.get('val_score', float('nan')):.4f}",
                row["seconds"],
            )
            if dist_info.is_main:
                save_training_state(
                    state_path,
                    {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "epoch": epoch,
                        "best": best,
                        "best_epoch": best_epoch,
                        "bad_epochs": bad,
                        "history": history,
                    },
                )
            if on_epoch is not None:
                on_epoch(row)
    finally:
        log.close()
        torch.use_deterministic_algorithms(prev_det[0], warn_only=prev_det[1])
    return TrainResult(
        best_checkpoint=best_path,
        best_score=best,
        best_epoch=best_epoch,
        epochs_run=len(history),
        history=history,
        seconds=time.perf_counter() - t_start,
        stopped_early=stopped,
    )


__all__ = ["DistInfo", "TrainConfig", "TrainResult", "fit", "init_distributed", "seed_everything"]
