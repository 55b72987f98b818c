"""LocalExecutor: in-process and process pool, worker deaths, thread limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_fake_steps import square_or_crash, thread_env_of_worker

from medsnowball.pipeline import Executor, LocalExecutor
from medsnowball.pipeline.device import THREAD_ENV_VARS, thread_env, threads_per_worker


def _lost(task: tuple[int, str], reason: str) -> str:
    return f"lost {task[0]}: {reason}"


def test_in_process_runs_in_order(tmp_path: Path) -> None:
    exe = LocalExecutor(1)
    assert isinstance(exe, Executor)
    tasks = [(i, str(tmp_path)) for i in range(4)]
    assert list(exe.run(square_or_crash, tasks, _lost)) == [0, 1, 4, 9]


def test_pool_retries_a_case_whose_worker_died_and_reports_a_lost_one(tmp_path: Path) -> None:
    tasks = [(2, str(tmp_path)), (-5, str(tmp_path)), (3, str(tmp_path)), (-99, str(tmp_path))]
    with LocalExecutor(2, max_attempts=2) as exe:
        results = list(exe.run(square_or_crash, tasks, _lost))
    assert len(results) == 4, "every task must be accounted for"
    assert 4 in results
    assert 9 in results
    assert 5000 in results, "the case whose worker died once is retried and succeeds"
    lost = [r for r in results if isinstance(r, str)]
    assert len(lost) == 1
    assert lost[0].startswith("lost -99: WorkerLost: the worker process died")


def test_workers_are_started_with_thread_limits(tmp_path: Path) -> None:
    with LocalExecutor(2, threads=1) as exe:
        seen = list(exe.run(thread_env_of_worker, [None, None], lambda t, r: r))
    assert seen == ["1", "1"]


def test_thread_env_restores_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with thread_env(3):
        assert all(__import__("os").environ[v] == "3" for v in THREAD_ENV_VARS)
    env = __import__("os").environ
    assert env["OMP_NUM_THREADS"] == "7"
    assert "MKL_NUM_THREADS" not in env


def test_threads_per_worker_splits_the_cpus() -> None:
    assert threads_per_worker(1, cpu_count=8) == 8
    assert threads_per_worker(3, cpu_count=8) == 2
    assert threads_per_worker(16, cpu_count=8) == 1


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        LocalExecutor(0)
    with pytest.raises(ValueError, match="spawn or forkserver"):
        LocalExecutor(2, start_method="fork")
