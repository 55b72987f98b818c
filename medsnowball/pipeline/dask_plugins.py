"""Dask worker set-up for medsnowball: compute-thread limits and one GPU per worker.

Imported only by :class:`~medsnowball.pipeline.dask_executor.DaskExecutor` (it needs
``dask[distributed]``); the plugin is shipped to every worker of the cluster, including
workers that join later or are restarted after their process died.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from medsnowball.pipeline.device import limit_threads

__all__ = [
    "ITK_THREADS_ENV",
    "PLUGIN_NAME",
    "MedsnowballWorkerSetup",
    "gpu_for_worker",
    "limit_itk_threads",
]

log = logging.getLogger(__name__)

PLUGIN_NAME = "medsnowball-worker-setup"
#: Threads of ITK's pool (SimpleITK filters).
ITK_THREADS_ENV = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


def gpu_for_worker(name: Any, devices: Sequence[str]) -> str:
    """The CUDA device a worker uses: worker ``i`` of a local cluster takes ``devices[i % n]``.

    Args:
        name: The worker's name (a local cluster numbers its workers 0, 1, ...).
        devices: CUDA device ids or UUIDs, as ``CUDA_VISIBLE_DEVICES`` accepts them.

    Returns:
        One entry of ``devices``.

    Raises:
        ValueError: ``devices`` is empty.
    """
    if not devices:
        raise ValueError("gpu_for_worker: expected at least one device, found none.")
    try:
        index = int(name)
    except (TypeError, ValueError):
        # Names of other clusters ("gpu-3", "slurm-12-0"): a stable spread over the devices.
        index = sum(ord(c) for c in str(name))
    return str(devices[index % len(devices)])


class MedsnowballWorkerSetup(WorkerPlugin):
    """Prepare a worker process before it runs any case.

    Args:
        threads: Compute threads of the worker process (OpenMP/BLAS variables and
            ``torch.set_num_threads``); ``None`` leaves them as the worker was started.
        gpu_devices: CUDA devices to spread the workers over (each worker sees one, through
            ``CUDA_VISIBLE_DEVICES``); ``None`` leaves the visible devices alone.
    """

    idempotent = True

    def __init__(self, threads: int | None, gpu_devices: Sequence[str] | None) -> None:
        self.threads = threads
        self.gpu_devices = tuple(gpu_devices) if gpu_devices else None

    def setup(self, worker: Any) -> None:
        """Apply the limits in the worker process (before torch initialises CUDA)."""
        if self.gpu_devices:
            device = gpu_for_worker(worker.name, self.gpu_devices)
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            log.debug("worker %s uses CUDA device %s", worker.name, device)
        if self.threads is not None:
            limit_threads(self.threads)
            limit_itk_threads(self.threads)


def limit_itk_threads(n: int) -> None:
    """Limit ITK's thread pool (SimpleITK filters), which ignores the OpenMP variables.

    Args:
        n: Thread count (>= 1).
    """
    os.environ[ITK_THREADS_ENV] = str(n)
    sitk = sys.modules.get("SimpleITK")
    if sitk is not None:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
