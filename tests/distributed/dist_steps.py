"""A test-only pipeline step that pauses or kills the worker process running a case.

Importable by Dask worker processes (spawned children inherit the test's ``sys.path``), so
the step pickles by reference like the built-in steps.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medsnowball.core.atomic import atomic_write_text
from medsnowball.pipeline import Pipeline, Step, register_step
from medsnowball.pipeline.context import CaseContext


@dataclass(frozen=True)
class GateConfig:
    """Which cases the gate holds, and how.

    Attributes:
        marker_dir: Folder of the ``<case>.attempt<n>`` markers (content: the worker pid).
        cases: Case ids the gate acts on (others pass straight through).
        mode: ``pause_once``: the first attempt waits (to be killed), later ones pass;
            ``pause``: every attempt waits; ``die``: the process kills itself (SIGKILL).
        timeout_s: A waiting attempt gives up (raises) after this long.
    """

    marker_dir: str = ""
    cases: tuple[str, ...] = ()
    mode: Literal["pause_once", "pause", "die"] = "pause_once"
    timeout_s: float = 60.0


@register_step("dist_gate")
class GateStep(Step):
    """Record each attempt of a gated case; then pause, die or pass (see GateConfig)."""

    config_class = GateConfig

    def run(self, ctx: CaseContext) -> None:
        cfg: GateConfig = self.config
        if ctx.case_id not in cfg.cases:
            return
        markers = Path(cfg.marker_dir)
        attempt = len(list(markers.glob(f"{ctx.case_id}.attempt*"))) + 1
        atomic_write_text(markers / f"{ctx.case_id}.attempt{attempt}", str(os.getpid()))
        if cfg.mode == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        if cfg.mode == "pause" or attempt == 1:
            deadline = time.monotonic() + cfg.timeout_s
            while time.monotonic() < deadline:
                time.sleep(0.05)
            raise TimeoutError(f"gate: case {ctx.case_id} was not killed within {cfg.timeout_s} s")


def with_gate(pipe: Pipeline, **gate: Any) -> Pipeline:
    """``pipe`` with a ``dist_gate`` step (see dist_steps.py) right after ``load``."""
    data = pipe.to_dict()
    steps = list(data["steps"])
    steps.insert(1, {"step": "dist_gate", "config": gate})
    data["steps"] = steps
    return Pipeline.from_dict(data, origin="gated")


def attempts(marker_dir: Path, case_id: str) -> list[int]:
    """Worker pids of the recorded attempts of a case, in order."""
    found = sorted(marker_dir.glob(f"{case_id}.attempt*"), key=lambda p: int(p.suffix[8:]))
    return [int(p.read_text()) for p in found]


def wait_for(predicate: object, timeout_s: float = 60.0) -> bool:
    """Poll ``predicate()`` every 50 ms until true or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def gpu_probe(task: object) -> tuple[str, float | None, str | None]:
    """Executor test task: (its device, the worker's free GPU resource while it runs, the
    worker's CUDA_VISIBLE_DEVICES)."""
    from distributed import get_worker

    free = get_worker().state.available_resources.get("GPU")
    device = task.options.device  # type: ignore[attr-defined]
    return device, free, os.environ.get("CUDA_VISIBLE_DEVICES")


def thread_limits(_: object) -> tuple[str, int]:
    """Executor test task: OMP_NUM_THREADS and torch's intra-op threads in the worker."""
    import torch

    return os.environ.get("OMP_NUM_THREADS", ""), torch.get_num_threads()


def fail_always(task: int) -> int:
    """Executor test task that raises (an infrastructure-level error, not a case error)."""
    raise ValueError(f"task {task} cannot run here")


def crash_task(task: tuple[int, str]) -> int:
    """Executor test task ``(n, marker_dir)``: n == -99 kills its worker process every time,
    another n < 0 kills it on the first attempt only (then returns -1000 n), else n * n."""
    n, marker_dir = task
    if n == -99:
        os.kill(os.getpid(), signal.SIGKILL)
    if n < 0:
        marker = Path(marker_dir) / f"crashed{n}"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return -n * 1000
    return n * n
