"""Device selection and per-worker thread limits.

Nothing here imports torch at module import time: the classical pipeline never needs it,
and ``medsnowball --help`` must stay fast. torch is imported only when a learned step asks
for the device, or when it is already loaded and its thread count must be limited.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from medsnowball.core.errors import ConfigError

__all__ = [
    "THREAD_ENV_VARS",
    "limit_threads",
    "resolve_device",
    "thread_env",
    "threads_per_worker",
]

#: Environment variables read by the OpenMP / BLAS runtimes of numpy, scipy and torch.
THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",  # SimpleITK ignores the OpenMP variables
)


def resolve_device(requested: str) -> str:
    """Turn ``auto|cpu|cuda`` into the device torch should use.

    Args:
        requested: ``"auto"`` (CUDA when torch sees a GPU, else CPU), ``"cpu"`` or ``"cuda"``.

    Returns:
        ``"cpu"`` or ``"cuda"``.

    Raises:
        ConfigError: Unknown name, or ``cuda`` requested where torch has no CUDA device.
    """
    if requested == "cpu":
        return "cpu"
    if requested not in ("auto", "cuda"):
        raise ConfigError(f"device: expected auto, cpu or cuda, found {requested!r}.")
    try:
        import torch
    except ImportError as exc:
        if requested == "cuda":
            raise ConfigError(
                "device: 'cuda' was requested but torch is not installed; "
                "install torch with CUDA support or use --device cpu."
            ) from exc
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise ConfigError(
            "device: 'cuda' was requested but torch.cuda.is_available() is False "
            "(CPU-only torch build or no visible GPU); use --device auto or cpu."
        )
    return "cpu"


def threads_per_worker(workers: int, cpu_count: int | None = None) -> int:
    """Threads each of ``workers`` processes may use so that together they fill the CPUs once.

    Args:
        workers: Number of worker processes (>= 1).
        cpu_count: CPUs available (default: those this process may run on).

    Returns:
        ``max(1, cpu_count // workers)``.
    """
    if cpu_count is None:
        try:
            cpu_count = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not on Linux
            cpu_count = os.cpu_count() or 1
    return max(1, cpu_count // max(1, workers))


def limit_threads(n: int) -> None:
    """Limit this process's compute threads to ``n``.

    Sets the OpenMP/BLAS environment variables (read by libraries loaded later) and, when
    torch is already imported, ``torch.set_num_threads(n)``. Does not import torch.

    Args:
        n: Thread count (>= 1).
    """
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    sitk = sys.modules.get("SimpleITK")
    if sitk is not None:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)


@contextlib.contextmanager
def thread_env(n: int | None) -> Iterator[None]:
    """Temporarily set the thread environment variables, e.g. while spawning workers.

    Child processes started inside the block inherit the limit from their first import
    on, which is the only way to limit a BLAS library that reads it once at load time.

    Args:
        n: Thread count, or ``None`` to change nothing.

    Yields:
        Nothing; the previous values are restored on exit.
    """
    if n is None:
        yield
        return
    saved = {var: os.environ.get(var) for var in THREAD_ENV_VARS}
    try:
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(n)
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
