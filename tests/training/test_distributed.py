"""DistributedDataParallel under torchrun-style environment variables (2 CPU processes, gloo)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
        }
    )
    import torch.distributed as dist

    from medsnowball.models.config import ModelConfig, PatchSpec
    from medsnowball.training import TrainConfig, train_classifier_on_patches

    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 8)).astype(np.float32)
    y = (np.arange(32) % 2).astype(np.float32)
    x[y == 1, 3:5, 3:5, 3:5] += 2.0
    cfg = ModelConfig(
        kind="fp_classifier",
        patch=PatchSpec((8, 8, 8), (1.0, 1.0, 1.0)),
        channels=(4, 8),
        strides=(2, 2),
    )
    res = train_classifier_on_patches(
        x, y, x, y, out, cfg, TrainConfig(epochs=2, batch_size=8, device="cpu", threads=1)
    )
    Path(out, f"rank{rank}.txt").write_text(str(res.epochs_run))
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_training(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "rank0.txt").read_text() == "2"
    assert (tmp_path / "rank1.txt").read_text() == "2"
    assert (tmp_path / "best.safetensors").is_file()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs, written by rank 0 only
