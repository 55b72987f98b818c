"""DaskExecutor: Ctrl-C without orphans, GPU resources, thread limits, remote schedulers,
errors, and the executor factory."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from dist_steps import (
    crash_task,
    fail_always,
    gpu_probe,
    thread_limits,
    wait_for,
    with_gate,
)

from medsnowball.core.errors import ConfigError
from medsnowball.pipeline import Executor, LocalExecutor, Pipeline, run_batch
from medsnowball.pipeline.dask_executor import DaskExecutor, make_executor
from medsnowball.pipeline.dask_plugins import gpu_for_worker


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _new_children(before: set[int]) -> list[str]:
    """Child processes started since ``before`` (multiprocessing's resource tracker aside)."""
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if proc.pid not in before and "resource_tracker" not in cmd and _alive(proc.pid):
            out.append(f"{proc.pid}: {cmd}")
    return out


def test_ctrl_c_cancels_the_batch_and_leaves_no_processes(
    tmp_path: Path,
    phantom_inputs: list[Path],
    cad_pipeline: Pipeline,
    request: pytest.FixtureRequest,
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT reaches only the main thread; this test runner uses another one")
    # A runner started in the background (`cmd &`, nohup) inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: install it for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    env_before = os.environ.get("OMP_NUM_THREADS")
    markers = tmp_path / "markers"
    markers.mkdir()
    gated = with_gate(
        cad_pipeline, marker_dir=str(markers), cases=["p1", "p2", "p3"], mode="pause", timeout_s=90
    )
    out = tmp_path / "out"
    exe = DaskExecutor(workers=2)
    worker_pids = set(exe.client.run(os.getpid).values())
    assert len(worker_pids) == 2
    with pytest.raises(ConfigError, match="declares a GPU resource"):
        DaskExecutor(exe.client.scheduler.address, gpu=True)

    def interrupt() -> None:  # Ctrl-C once both workers are inside a case
        if wait_for(lambda: len(list(markers.iterdir())) >= 2):
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    t0 = time.monotonic()
    with exe, pytest.raises(KeyboardInterrupt):
        run_batch(
            phantom_inputs, out, pipeline=gated, formats="json,csv", executor=exe, keep_names=True
        )
    seconds = time.monotonic() - t0
    thread.join(timeout=5)

    assert seconds < 60, "the running cases were waited for instead of cancelled"
    assert sorted(p.name for p in markers.iterdir()) == ["p1.attempt1", "p2.attempt1"]
    assert not [pid for pid in worker_pids if _alive(pid)], "worker processes survived"
    assert _new_children(before) == []
    assert os.environ.get("OMP_NUM_THREADS") == env_before
    assert not list(out.rglob("findings.json"))
    assert not list(out.rglob(".tmp-*"))
    assert (out / "summary.csv").read_text().splitlines()[1:] == []
    exe.close()  # idempotent


@pytest.fixture(scope="module")
def gpu_exe() -> Iterator[DaskExecutor]:
    """A local cluster that declares one GPU per worker (device ids only: no CUDA here)."""
    with DaskExecutor(workers=2, gpu=True, gpu_devices=["0", "1"], threads=2) as exe:
        yield exe


def _lost(task: object, reason: str) -> str:
    return f"lost: {reason}"


def test_gpu_workers_declare_a_gpu_and_cuda_tasks_request_it(gpu_exe: DaskExecutor) -> None:
    assert isinstance(gpu_exe, Executor)
    assert gpu_exe.gpu
    assert gpu_exe.workers == 2
    info = gpu_exe.client.scheduler_info(n_workers=-1)["workers"]
    assert [w["resources"] for w in info.values()] == [{"GPU": 1}, {"GPU": 1}]
    tasks = [SimpleNamespace(options=SimpleNamespace(device=d)) for d in ("cuda", "auto", "cpu")]
    results = list(gpu_exe.run(gpu_probe, tasks, _lost))
    by_device = {device: (free, visible) for device, free, visible in results}
    assert by_device["cuda"][0] == 0, "a cuda task holds its worker's GPU"
    assert by_device["auto"][0] == 0
    assert by_device["cpu"][0] == 1, "a cpu task leaves the GPU free"
    visible = gpu_exe.client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
    assert sorted(visible.values()) == ["0", "1"], "one device per worker"


def test_workers_run_with_the_thread_limit(gpu_exe: DaskExecutor) -> None:
    assert gpu_exe.threads == 2
    got = list(gpu_exe.run(thread_limits, [0, 1], _lost))
    assert got == [("2", 2), ("2", 2)]
    itk = gpu_exe.client.run(lambda: os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"))
    assert list(itk.values()) == ["2", "2"]
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:  # Dask's default would slow cases down
        trim = gpu_exe.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert list(trim.values()) == [None, None]


def test_a_task_that_raises_is_reported_through_lost(gpu_exe: DaskExecutor) -> None:
    got = list(gpu_exe.run(fail_always, [7], _lost))
    assert got == ["lost: ValueError: task 7 cannot run here"]


def test_an_existing_scheduler_is_used_and_left_running(gpu_exe: DaskExecutor) -> None:
    address = gpu_exe.client.scheduler.address
    with DaskExecutor(address) as remote:
        assert remote.workers == 2
        assert remote.gpu, "GPU resources of the remote workers are detected"
        assert remote.threads is None
        assert sorted(remote.run(abs, [-3, -1, -2], _lost)) == [1, 2, 3]
    assert len(gpu_exe.client.run(os.getpid)) == 2, "closing a client must not stop the cluster"


def test_cases_are_resubmitted_when_the_scheduler_allows_fewer_failures(tmp_path: Path) -> None:
    """A remote scheduler with allowed-failures 0: retries come from resubmission."""
    import dask
    from distributed import Client, LocalCluster

    settings = {"distributed.scheduler.worker-saturation": 1.0}
    with (
        dask.config.set(settings),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"allowed_failures": 0},
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
        DaskExecutor(client=client, retries=1) as exe,
    ):
        tasks = [(2, str(tmp_path)), (-5, str(tmp_path)), (3, str(tmp_path)), (-99, str(tmp_path))]
        results = list(exe.run(crash_task, tasks, _lost))
        assert wait_for(lambda: len(client.run(os.getpid)) == 2, timeout_s=30)
    assert len(results) == 4, "every task is accounted for"
    assert {4, 9, 5000} <= set(results), "the case whose worker died once succeeds on a rerun"
    assert [r for r in results if isinstance(r, str)] == [
        "lost: WorkerLost: the worker process died 2 times while processing case task-3; it "
        "may have run out of memory (worker memory limit) or been killed. The other cases "
        "are not affected."
    ]


def test_an_unreachable_scheduler_is_a_config_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError, match=f"could not connect to the Dask scheduler.*{port}"):
        DaskExecutor(f"tcp://127.0.0.1:{port}", connect_timeout_s=1.0)


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigError, match="workers: expected >= 1"):
        DaskExecutor(workers=0)
    with pytest.raises(ConfigError, match="retries: expected >= 0"):
        DaskExecutor(retries=-1)
    with pytest.raises(ConfigError, match="threads_per_worker"):
        DaskExecutor(threads_per_worker=0)


def test_make_executor() -> None:
    local = make_executor("local", workers=3, retries=1)
    assert isinstance(local, LocalExecutor)
    assert (local.workers, local.max_attempts) == (3, 2)
    with pytest.raises(ConfigError, match="--scheduler needs --executor dask"):
        make_executor("local", workers=1, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ConfigError, match="expected 'local' or 'dask', found 'spark'"):
        make_executor("spark", workers=1)  # type: ignore[arg-type]


def test_gpu_for_worker_spreads_workers_over_devices() -> None:
    assert [gpu_for_worker(i, ["0", "1"]) for i in range(4)] == ["0", "1", "0", "1"]
    assert gpu_for_worker("gpu-7", ["3"]) == "3"
    with pytest.raises(ValueError, match="at least one device"):
        gpu_for_worker(0, [])
