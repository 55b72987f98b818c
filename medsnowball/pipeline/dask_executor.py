"""Run the cases of a batch on a Dask cluster: a local one, a running scheduler, or SLURM.

:class:`DaskExecutor` implements the :class:`~medsnowball.pipeline.executors.Executor`
protocol, so :func:`~medsnowball.pipeline.batch.run_batch` runs unchanged on it::

    from medsnowball.pipeline import run_batch
    from medsnowball.pipeline.dask_executor import DaskExecutor

    if __name__ == "__main__":  # worker processes re-import a script
        with DaskExecutor(workers=4) as exe:                  # a LocalCluster of 4 processes
            run_batch(["/data/archive"], "out/", executor=exe, resume=True)

        with DaskExecutor("tcp://scheduler:8786") as exe:     # an existing cluster
            run_batch(["/shared/archive"], "/shared/out", executor=exe)

A case is the unit of work. Each Dask task receives one small
:class:`~medsnowball.pipeline.batch.CaseTask` (paths and options, no pixels), loads its
input from a path every worker can read, writes its outputs atomically into the shared
output folder, and returns its summary row; nothing large goes through the scheduler.

Fault tolerance: a case whose worker process dies (killed, out of memory) is rerun on
another worker up to ``retries`` times (the scheduler's ``allowed-failures`` for a local
cluster, plus resubmission when a remote scheduler allows fewer), then reported failed
with ``"WorkerLost: the worker process died N times while processing case X ..."``.
Each worker of a local cluster takes one case at a time, so a death is charged to the
case that caused it only.

``dask[distributed]`` is imported when an executor is created, not when this module is.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from medsnowball.core.errors import ConfigError, MissingDependencyError
from medsnowball.pipeline.dask_security import check_scheduler_security
from medsnowball.pipeline.device import THREAD_ENV_VARS, thread_env, threads_per_worker

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client, Future

    from medsnowball.pipeline.executors import Executor

__all__ = ["DaskExecutor", "ExecutorKind", "make_executor"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

ExecutorKind = Literal["local", "dask"]

#: Share of the machine's memory (cgroup limit included) given to a local cluster's workers.
LOCAL_MEMORY_FRACTION = 0.9
#: Threads of ITK's pool (SimpleITK filters), which ignores the OpenMP variables.
ITK_THREADS_ENV = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"  # = dask_plugins.ITK_THREADS_ENV
#: Environment the Dask nanny copies into this process; restored by ``close``.
_NANNY_ENV_VARS: tuple[str, ...] = (*THREAD_ENV_VARS, "MALLOC_TRIM_THRESHOLD_")


def _require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "The Dask executor needs dask[distributed], which is not installed; install it "
            "with: pip install 'medsnowball[distributed]'."
        ) from exc


def _case_label(task: object, index: int) -> str:
    """The case id of a :class:`CaseTask` (or the task's position for other tasks)."""
    case = getattr(task, "case", None)
    case_id = getattr(case, "case_id", None)
    return str(case_id) if case_id else f"task-{index}"


def _task_device(task: object) -> str:
    """The ``device`` option of a :class:`CaseTask` (``"auto"`` for other tasks)."""
    options = getattr(task, "options", None)
    return str(getattr(options, "device", "auto"))


def _count_local_gpus() -> int:
    """CUDA devices torch sees here; 0 without an NVIDIA driver (torch not even imported)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    if shutil.which("nvidia-smi") is None and not Path("/proc/driver/nvidia").exists():
        return 0
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def _parse_memory_limit(value: str | float | None, workers: int) -> str | float | None:
    """``"auto"``: 90 % of the machine's memory split over the worker processes."""
    if value != "auto":
        return value
    from distributed.system import MEMORY_LIMIT

    return int(MEMORY_LIMIT * LOCAL_MEMORY_FRACTION / workers)


def _fmt_bytes(value: Any) -> str:
    if isinstance(value, (int, float)) and value > 0:
        return f"{value / 2**30:.1f} GiB"
    return str(value) if value else "none"


class DaskExecutor:
    """Run batch tasks on a Dask cluster (see the module docstring).

    Args:
        scheduler: Address of a running scheduler (``tcp://host:8786``, or ``tls://`` with
            ``security``); ``None`` starts a local cluster of worker processes on this
            machine. Dask sends pickles: the scheduler must be trusted (docs/distributed.md).
        workers: Worker processes of the local cluster (ignored with ``scheduler``).
        threads_per_worker: Cases one local worker process runs at the same time. Keep 1:
            a process that dies then takes only its own case with it.
        retries: Reruns of a case whose worker process died (and of a task that raised,
            which :func:`run_case_task` never does for a case error) before it is reported
            failed.
        gpu: Whether workers hold a GPU each. ``True``: local workers declare the resource
            ``GPU=1`` and each see one CUDA device; every task whose device is not ``cpu``
            requests it, so a GPU worker runs one case at a time. ``None``: ``True`` when
            this machine has CUDA devices (local cluster) or some worker of the remote
            cluster declares a ``GPU`` resource.
        threads: Compute threads (OpenMP/BLAS/torch) per worker process; default: the
            CPUs split over the local cluster's case slots; with ``scheduler``, the workers'
            own environment (Dask sets ``OMP_NUM_THREADS=1`` unless told otherwise).
        memory_limit: Memory per local worker process (``"4GiB"``, bytes, ``None`` for no
            limit); ``"auto"``: 90 % of this machine's memory split over the workers. A
            worker above 95 % of it is restarted and its case retried.
        gpu_devices: CUDA devices of a local GPU cluster (default: all visible ones);
            worker ``i`` uses ``gpu_devices[i % len(gpu_devices)]``.
        dashboard: Serve the local scheduler's dashboard on a free port (logged).
        connect_timeout_s: How long to wait for a remote scheduler.
        client: An existing ``distributed.Client`` to use instead (not closed by us).
        security: A ``distributed.Security`` for a ``tls://`` scheduler (see
            :func:`medsnowball.pipeline.dask_security.make_security`).

    Attributes:
        workers: Cases processed at the same time (threads of the cluster at start).
        threads: Compute threads per worker process (``None``: left to the workers).
        gpu: Whether tasks request a ``GPU`` resource.
        retries: See above.

    Raises:
        ConfigError: Invalid arguments, an unreachable scheduler, or ``gpu=True`` where
            no GPU is available.
        MissingDependencyError: dask[distributed] is not installed.
    """

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int = 2,
        threads_per_worker: int = 1,
        retries: int = 2,
        gpu: bool | None = None,
        *,
        threads: int | None = None,
        memory_limit: str | float | None = "auto",
        gpu_devices: Sequence[str | int] | None = None,
        dashboard: bool = False,
        connect_timeout_s: float = 30.0,
        client: Client | None = None,
        security: Any = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"workers: expected >= 1, found {workers}.")
        if threads_per_worker < 1:
            raise ConfigError(f"threads_per_worker: expected >= 1, found {threads_per_worker}.")
        if retries < 0:
            raise ConfigError(f"retries: expected >= 0, found {retries}.")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads: expected >= 1, found {threads}.")
        if scheduler is not None and client is not None:
            raise ConfigError("DaskExecutor: pass either a scheduler address or a client.")
        if client is None:
            check_scheduler_security(scheduler, security)
        _require_distributed()
        self.scheduler = scheduler
        self.retries = retries
        self.threads = threads
        self.gpu = False
        self.workers = workers * threads_per_worker
        self._memory_limit = memory_limit
        self._dashboard = dashboard
        self._client: Client | None = None
        self._cluster: Any = None
        self._own_client = client is None
        self._outstanding: set[Future] = set()
        self._saved_env: dict[str, str | None] = {}
        try:
            if client is not None:
                self._client = client
                self._adopt_remote(gpu)
            elif scheduler is not None:
                self._connect(scheduler, connect_timeout_s, security)
                self._adopt_remote(gpu)
            else:
                self._start_local(workers, threads_per_worker, gpu, gpu_devices)
        except BaseException:
            self.close()
            raise

    # set-up ---------------------------------------------------------------------------
    def _connect(self, address: str, timeout_s: float, security: Any = None) -> None:
        from distributed import Client

        try:
            self._client = Client(
                address, timeout=timeout_s, set_as_default=False, security=security
            )
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"could not connect to the Dask scheduler at {address!r} within "
                f"{timeout_s:.0f} s ({type(exc).__name__}: {exc}); check the address "
                "(e.g. tcp://host:8786) and that the scheduler is running and reachable."
            ) from exc

    def _adopt_remote(self, gpu: bool | None) -> None:
        """Size and GPU flag from the connected cluster; set up its workers if asked."""
        client = self._require_client()
        try:
            info = client.scheduler_info(n_workers=-1)  # all workers (default: the first 5)
        except TypeError:  # distributed < 2025: always lists every worker
            info = client.scheduler_info()
        workers = info.get("workers", {})
        self.workers = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        with_gpu = [a for a, w in workers.items() if (w.get("resources") or {}).get("GPU")]
        if gpu is None:
            self.gpu = bool(with_gpu)
        elif gpu and workers and not with_gpu:
            raise ConfigError(
                f"gpu=True but no worker of the Dask cluster at {self._address()} "
                "declares a GPU resource, so the cases would wait forever; start the GPU "
                "workers with 'dask worker ADDRESS --nworkers 1 --nthreads 1 --resources "
                "GPU=1' (one per GPU, CUDA_VISIBLE_DEVICES set), or use gpu=False."
            )
        else:
            self.gpu = bool(gpu)
        if self.threads is not None:
            self._register_setup(self.threads, None)
        log.info(
            "connected to the Dask scheduler %s: %d worker(s), %d thread(s)%s",
            self._address(),
            len(workers),
            self.workers,
            f", {len(with_gpu)} with a GPU" if with_gpu else "",
        )

    def _start_local(
        self,
        n_workers: int,
        slots: int,
        gpu: bool | None,
        gpu_devices: Sequence[str | int] | None,
    ) -> None:
        import dask
        from distributed import Client, LocalCluster

        devices: list[str] | None = None
        if gpu_devices is not None:
            devices = [str(d) for d in gpu_devices]
        elif gpu is not False:
            count = _count_local_gpus()
            if count:
                devices = [str(i) for i in range(count)]
            elif gpu:
                raise ConfigError(
                    "gpu=True but torch sees no CUDA device on this machine; use gpu=False "
                    "(or device cpu), or run on a machine with a GPU."
                )
        if gpu is False:
            devices = None
        if devices is not None and not devices:
            raise ConfigError("gpu_devices: expected at least one CUDA device id, found none.")
        self.gpu = devices is not None
        threads = self.threads or threads_per_worker(n_workers * slots)
        self.threads = threads
        memory = _parse_memory_limit(self._memory_limit, n_workers)
        self._saved_env = {var: os.environ.get(var) for var in _NANNY_ENV_VARS}
        env = {var: str(threads) for var in (*THREAD_ENV_VARS, ITK_THREADS_ENV)}
        settings = {
            # A worker holds only the cases it runs, so when its process dies no queued
            # neighbour is counted as a suspect of the death.
            "distributed.scheduler.worker-saturation": 1.0,
            # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in new workers, which turns off glibc's
            # adaptive mmap threshold: every large numpy array is then mmap'ed and
            # page-faulted anew. Measured: +45 % CPU, +75 % wall time per case.
            "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
        }
        with thread_env(threads), dask.config.set(settings):
            self._cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=slots,
                processes=True,
                host="127.0.0.1",
                # Its small HTTP server (health, metrics) always runs: a free local port,
                # never a fixed one that a second cluster would collide with.
                dashboard_address="127.0.0.1:0",
                memory_limit=memory,
                resources={"GPU": 1} if self.gpu else None,
                env=env,
                scheduler_kwargs={"allowed_failures": self.retries, "dashboard": self._dashboard},
            )
        self._client = Client(self._cluster, set_as_default=False)
        self._register_setup(threads, devices)
        log.info(
            "started a local Dask cluster: %d worker process(es) x %d case(s), %d compute "
            "thread(s) each, memory limit %s per worker%s%s",
            n_workers,
            slots,
            threads,
            _fmt_bytes(memory),
            f", GPUs {','.join(devices)}" if devices else "",
            f", dashboard {self._cluster.dashboard_link}" if self._dashboard else "",
        )

    def _register_setup(self, threads: int | None, devices: Sequence[str] | None) -> None:
        from medsnowball.pipeline.dask_plugins import PLUGIN_NAME, MedsnowballWorkerSetup

        self._require_client().register_plugin(
            MedsnowballWorkerSetup(threads, devices), name=PLUGIN_NAME
        )

    def _address(self) -> str:
        """The scheduler's address (for messages)."""
        rpc = getattr(self._client, "scheduler", None)
        return str(getattr(rpc, "address", None) or self.scheduler or "?")

    def _require_client(self) -> Client:
        if self._client is None:
            raise ConfigError("DaskExecutor: the executor is closed; create a new one.")
        return self._client

    # context manager ------------------------------------------------------------------
    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> Client:
        """The ``distributed.Client`` (e.g. to look at the dashboard or the workers).

        Raises:
            ConfigError: The executor is closed.
        """
        return self._require_client()

    @property
    def dashboard_link(self) -> str | None:
        """URL of the scheduler's dashboard, when it serves one."""
        client = self._client
        if client is None or (self._cluster is not None and not self._dashboard):
            return None
        try:
            link = client.dashboard_link
        except (AttributeError, KeyError):
            return None
        return str(link) if link else None

    # running --------------------------------------------------------------------------
    def _submit(self, fn: Callable[[T], R], task: T, index: int) -> Future:
        client = self._require_client()
        resources = {"GPU": 1} if self.gpu and _task_device(task) != "cpu" else None
        key = f"medsnowball-case-{_case_label(task, index)}-{uuid.uuid4().hex[:8]}"
        future = client.submit(
            fn, task, key=key, pure=False, retries=self.retries, resources=resources
        )
        self._outstanding.add(future)
        return future

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        lost: Callable[[T, str], R],
    ) -> Iterator[R]:
        """Submit every task; yield the results as tasks finish (see ``Executor.run``).

        A task whose worker process died more than ``retries`` times, or that raised, or
        could not be shipped, is turned into a result by ``lost``. When the consumer stops
        early (Ctrl-C, an exception), the tasks not yet finished are cancelled.

        Args:
            fn: Picklable top-level function (``run_case_task``).
            tasks: Picklable tasks; loaded by the workers themselves.
            lost: Builds the result of a task the cluster could not complete.

        Yields:
            Exactly one result per task, in completion order.
        """
        from distributed import CancelledError, KilledWorker, as_completed

        index_of: dict[Future, int] = {}
        deaths = [0] * len(tasks)
        unshippable: list[tuple[int, str]] = []
        for i, task in enumerate(tasks):
            try:
                index_of[self._submit(fn, task, i)] = i
            except Exception as exc:  # noqa: BLE001 - e.g. a task that cannot be pickled
                unshippable.append((i, f"{type(exc).__name__}: {exc}"))
        finished = False
        try:
            for i, reason in unshippable:
                yield lost(tasks[i], f"could not submit the task to Dask: {reason}")
            completed = as_completed(
                list(index_of), loop=self._require_client().loop, with_results=False
            )
            for future in completed:
                i = index_of.pop(future)
                self._outstanding.discard(future)
                try:
                    result = future.result()
                except KilledWorker as exc:
                    deaths[i] += int(getattr(exc, "allowed_failures", 0)) + 1
                    label = _case_label(tasks[i], i)
                    retry = self._resubmit(fn, tasks[i], i, deaths[i])
                    if retry is not None:
                        index_of[retry] = i
                        completed.add(retry)
                        continue
                    result = lost(
                        tasks[i],
                        f"WorkerLost: the worker process died {deaths[i]} times while "
                        f"processing case {label}; it may have run out of memory (worker "
                        "memory limit) or been killed. The other cases are not affected.",
                    )
                except CancelledError as exc:
                    result = lost(tasks[i], f"Cancelled: the Dask task was cancelled ({exc}).")
                except Exception as exc:  # noqa: BLE001 - the task raised or could not run
                    result = lost(tasks[i], f"{type(exc).__name__}: {exc}")
                finally:
                    future.release()
                yield result
            finished = True
        finally:
            if not finished:
                self._cancel(list(index_of))

    def _resubmit(self, fn: Callable[[T], R], task: T, index: int, deaths: int) -> Future | None:
        """Submit a task again after ``deaths`` worker deaths, if retries are left."""
        if deaths > self.retries:
            return None
        log.warning(
            "case %s: its worker process died %d time(s); resubmitting it",
            _case_label(task, index),
            deaths,
        )
        try:
            return self._submit(fn, task, index)
        except Exception as exc:  # noqa: BLE001 - the client is gone: report the case lost
            log.warning("resubmitting case %s failed: %s", _case_label(task, index), exc)
            return None

    def _cancel(self, futures: Sequence[Future]) -> None:
        """Cancel unfinished tasks (queued ones never start; running ones are abandoned)."""
        self._outstanding.difference_update(futures)
        client = self._client
        if client is None or not futures:
            return
        log.info("cancelling %d unfinished case(s)", len(futures))
        try:
            client.cancel(list(futures), force=True, reason="medsnowball batch stopped")
        except Exception as exc:  # noqa: BLE001 - best effort while shutting down
            log.debug("cancelling Dask futures failed: %s", exc)

    # shutting down --------------------------------------------------------------------
    def close(self) -> None:
        """Cancel what is left, close the client and (a local cluster's) worker processes.

        Idempotent. Worker processes of a local cluster still alive after the cluster
        closed (e.g. stuck in native code) are killed, so nothing outlives the executor.
        """
        client, cluster = self._client, self._cluster
        self._client, self._cluster = None, None
        if self._outstanding and client is not None:
            self._client = client
            self._cancel(list(self._outstanding))
            self._client = None
        self._outstanding.clear()
        pids: list[int] = []
        if cluster is not None:
            found = (getattr(worker, "pid", None) for worker in cluster.workers.values())
            pids = [int(pid) for pid in found if pid]
        if client is not None and self._own_client:
            try:
                client.close(timeout=10)
            except Exception as exc:  # noqa: BLE001 - keep shutting down
                log.debug("closing the Dask client failed: %s", exc)
        if cluster is not None:
            try:
                cluster.close(timeout=20)
            except Exception as exc:  # noqa: BLE001 - keep shutting down
                log.warning("closing the local Dask cluster failed: %s", exc)
            _kill_leftovers(pids)
        for var, value in self._saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        self._saved_env = {}


def _kill_leftovers(pids: Sequence[int]) -> None:
    """SIGKILL worker processes of ours that survived the cluster's shutdown."""
    import psutil

    me = os.getpid()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.ppid() != me or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            log.warning("worker process %d outlived the cluster; killing it", pid)
            os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except (psutil.Error, OSError):
            continue


def make_executor(
    kind: ExecutorKind,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    retries: int = 2,
    gpu: bool | None = None,
    threads: int | None = None,
    memory_limit: str | float | None = "auto",
    security: Any = None,
) -> Executor:
    """Create the executor the CLI's ``--executor local|dask`` option names.

    Args:
        kind: ``"local"`` (this machine, ``workers`` processes; 1 = in-process) or
            ``"dask"`` (a local Dask cluster of ``workers`` processes, or the cluster at
            ``scheduler``).
        workers: Cases processed at the same time (ignored with ``scheduler``).
        scheduler: Address of a running Dask scheduler (``dask`` only).
        retries: Reruns of a case whose worker process died.
        gpu: See :class:`DaskExecutor` (``dask`` only).
        threads: Compute threads per worker process (default: CPUs / workers).
        memory_limit: Memory per local Dask worker (``dask`` only).
        security: ``distributed.Security`` for a ``tls://`` scheduler (``dask`` only).

    Returns:
        An executor for :func:`~medsnowball.pipeline.batch.run_batch`; close it (or use it
        as a context manager) when done.

    Raises:
        ConfigError: Unknown kind, options that do not fit the kind, invalid values, or an
            unreachable scheduler.
        MissingDependencyError: ``dask`` without dask[distributed] installed.
    """
    if kind == "local":
        if scheduler is not None:
            raise ConfigError(
                "--scheduler needs --executor dask (the local executor runs on this machine)."
            )
        if security is not None:
            raise ConfigError("--tls-* options need --executor dask and a tls:// --scheduler.")
        if workers < 1:
            raise ConfigError(f"workers: expected >= 1, found {workers}.")
        from medsnowball.pipeline.executors import LocalExecutor

        return LocalExecutor(workers, max_attempts=retries + 1, threads=threads)
    if kind == "dask":
        return DaskExecutor(
            scheduler,
            workers=workers,
            retries=retries,
            gpu=gpu,
            threads=threads,
            memory_limit=memory_limit,
            security=security,
        )
    raise ConfigError(f"executor: expected 'local' or 'dask', found {kind!r}.")
