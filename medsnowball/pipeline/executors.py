"""Executors: where the cases of a batch run.

An executor takes a picklable, top-level function and a list of small task objects and
yields one result per task as tasks finish. It never sees images: each task loads its own
input from a path and writes its own outputs, returning a summary row. That keeps the
contract tiny, so a distributed engine (Dask, issue 6) implements the same protocol::

    class DaskExecutor:
        workers: int
        def run(self, fn, tasks, lost):
            futures = client.map(fn, tasks, pure=False, retries=2)
            for fut in distributed.as_completed(futures):
                yield fut.result()       # or lost(task, reason) if the task could not run
        def close(self): client.close()

``lost(task, reason)`` turns a task the infrastructure could not finish (its worker
process died, it could not be pickled) into a failed result, so every case is accounted
for even when a worker is killed.

Worker processes never outlive the process that started them: on Linux they ask the
kernel for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), and on every
platform a watchdog thread waits on the parent's sentinel and exits the worker when the
parent is gone (``kill -9`` of ``medsnowball run`` leaves no 700 MB orphans behind).

Workers that die while *starting* (before any of them ran a case) are a setup error, not
a case failure: the usual cause is a script that calls ``run_batch(..., workers=2)`` at
its top level without ``if __name__ == "__main__":``, so every spawned worker re-runs the
batch. The parent raises one :class:`~medsnowball.core.errors.WorkerStartError` saying
how to fix it instead of charging the cases with ``WorkerLost``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar, runtime_checkable

from medsnowball.core.errors import WorkerStartError
from medsnowball.pipeline.device import thread_env, threads_per_worker

__all__ = ["Executor", "LocalExecutor", "exit_if_spawn_bootstrap"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Exit status of a worker whose parent process died (it exits on its own).
EXIT_ORPHANED = 75
#: Exit status of a spawned worker that re-ran a script calling ``run_batch`` unguarded.
EXIT_UNGUARDED_MAIN = 76
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_WATCHDOG_POLL_S = 1.0
_GUARD_EXAMPLE = (
    '    if __name__ == "__main__":\n'
    '        summary = run_batch(["/data/archive"], "out/", workers=2)\n'
    "        print(summary.n_ok, summary.n_failed)\n"
)


@runtime_checkable
class Executor(Protocol):
    """Runs batch tasks somewhere; implemented by :class:`LocalExecutor` (and a Dask one).

    Attributes:
        workers: Number of cases processed at the same time.
    """

    workers: int

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        lost: Callable[[T, str], R],
    ) -> Iterator[R]:
        """Run ``fn(task)`` for every task; yield the results in completion order.

        Args:
            fn: Picklable top-level function; it must not raise for case errors (it
                returns a failed row instead).
            tasks: Picklable task objects.
            lost: Builds the result of a task that could not be completed (worker died,
                pickling failed), given the task and a reason.

        Yields:
            Exactly one result per task.
        """
        ...

    def close(self) -> None:
        """Release workers (idempotent)."""
        ...


def exit_if_spawn_bootstrap() -> None:
    """Quietly end a worker process that is re-running an unguarded script.

    A ``spawn``/``forkserver`` worker imports the main script before it can run anything.
    When that script calls ``run_batch(..., workers=2)`` at its top level, the import
    starts the batch again inside the worker, where ``multiprocessing`` would fail with a
    long ``RuntimeError`` traceback per worker. Called there, this exits the worker with
    :data:`EXIT_UNGUARDED_MAIN` and no output; the parent then raises one
    :class:`WorkerStartError` with the fix. Anywhere else it does nothing.

    Raises:
        SystemExit: Only inside a worker that is still importing the main script.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(EXIT_UNGUARDED_MAIN)


def _set_parent_death_signal() -> None:
    """Ask Linux to SIGKILL this process when the thread that started it ends."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    except (OSError, AttributeError) as exc:  # no libc / no prctl: the watchdog remains
        log.debug("parent-death signal unavailable: %s", exc)


def _watch_parent(parent: Any, ppid: int) -> None:
    """Exit this worker as soon as its parent process is gone (runs in a daemon thread).

    Args:
        parent: ``multiprocessing.parent_process()`` (its sentinel closes when the parent
            dies), or None when unknown (then only the parent pid is watched).
        ppid: ``os.getppid()`` when the worker started; it changes when the worker is
            re-parented because its parent died.
    """
    while True:
        if parent is not None:
            parent.join(_WATCHDOG_POLL_S)  # returns early when the parent dies
            alive = bool(parent.is_alive())
        else:
            time.sleep(_WATCHDOG_POLL_S)
            alive = True
        if not alive or os.getppid() != ppid:
            log.warning("the parent process is gone; worker %d exits", os.getpid())
            os._exit(EXIT_ORPHANED)


def _worker_init(started: Any, parent_death_signal: bool) -> None:
    """Initializer of every local worker process: never outlive the parent; say "started".

    Args:
        started: A ``multiprocessing`` Event set once a worker got this far (the parent
            tells start-up failures from cases that kill their worker with it).
        parent_death_signal: Also use Linux's parent-death signal (only when the pool is
            driven by the parent's main thread: the signal follows the spawning thread).
    """
    ppid = os.getppid()
    if parent_death_signal:
        _set_parent_death_signal()
    threading.Thread(
        target=_watch_parent,
        args=(multiprocessing.parent_process(), ppid),
        name="medsnowball-parent-watchdog",
        daemon=True,
    ).start()  # also catches a parent that died before the signal was armed
    started.set()


def _start_error(workers: int, start_method: str, unguarded: bool) -> WorkerStartError:
    cause = (
        "they re-ran a script that calls run_batch at its top level"
        if unguarded
        else "see their error output above; the usual cause is a script that calls "
        "run_batch at its top level"
    )
    return WorkerStartError(
        f"expected {workers} worker processes (start method {start_method!r}) to start, "
        f"but they exited while starting, before running any case: {cause}. Worker "
        "processes import the main script again, so put the call under a main guard:\n\n"
        f"{_GUARD_EXAMPLE}\nor use workers=1 (no worker processes)."
    )


class LocalExecutor:
    """Run cases on this machine: in-process (``workers=1``) or in worker processes.

    Worker processes are started with ``spawn`` (or ``forkserver``), never ``fork``: the
    parent may hold threads (progress bar, torch) that ``fork`` would copy half-way. At most
    ``workers`` tasks are in flight. When a worker dies (killed, out of memory) the pool
    breaks and every case that was in flight is rerun on its own, so the culprit is known
    for sure: a case whose worker dies while it runs alone ``max_attempts`` times is
    reported through ``lost``; innocent neighbours are never charged. Workers exit when
    this process dies (see the module docstring); a pool whose workers all die before
    any of them started raises :class:`WorkerStartError` (e.g. an unguarded script).

    Args:
        workers: Parallel cases (1 = in this process).
        start_method: ``"spawn"`` or ``"forkserver"``.
        max_attempts: Worker deaths (while running alone) after which a case is lost.
        threads: Compute threads per worker process (default: CPUs // workers).
    """

    def __init__(
        self,
        workers: int = 1,
        *,
        start_method: str = "spawn",
        max_attempts: int = 2,
        threads: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, found {workers}.")
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start_method must be spawn or forkserver, found {start_method!r}.")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, found {max_attempts}.")
        self.workers = workers
        self.start_method = start_method
        self.max_attempts = max_attempts
        self.threads = threads if threads is not None else threads_per_worker(workers)
        self._pool: ProcessPoolExecutor | None = None
        self._pool_thread: threading.Thread | None = None
        self._started: Any = None  # multiprocessing Event: some worker got going
        self._procs: dict[int, Any] = {}  # every worker process started (for exit codes)
        if workers > 1:
            exit_if_spawn_bootstrap()  # in a worker re-running an unguarded script

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        lost: Callable[[T, str], R],
    ) -> Iterator[R]:
        """See :meth:`Executor.run`."""
        if self.workers == 1:
            for task in tasks:
                yield fn(task)
            return
        yield from self._run_pool(fn, tasks, lost)

    def _new_pool(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context(self.start_method)
        if self._started is None:
            self._started = ctx.Event()
        # The parent-death signal follows the *thread* that spawned a worker: only the
        # main thread lives as long as the process. A pool belongs to the thread that
        # made it (see _run_pool), so workers are always spawned from that thread.
        self._pool_thread = threading.current_thread()
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(self._started, self._pool_thread is threading.main_thread()),
        )

    def _check_started(self) -> None:
        """After a pool broke: raise if no worker of this executor ever started."""
        if self._started is None or self._started.is_set():
            return
        unguarded = False
        for proc in self._procs.values():
            proc.join(5.0)
            unguarded = unguarded or proc.exitcode == EXIT_UNGUARDED_MAIN
        raise _start_error(self.workers, self.start_method, unguarded)

    def _run_pool(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        lost: Callable[[T, str], R],
    ) -> Iterator[R]:
        pending: deque[int] = deque(range(len(tasks)))
        deaths = [0] * len(tasks)  # deaths while running alone: certainly its own fault
        suspects: set[int] = set()  # were in flight when a worker died: rerun alone
        in_flight: dict[Future[R], int] = {}
        finished_cleanly = False
        try:
            while pending or in_flight:
                if self._pool is not None and self._pool_thread is not threading.current_thread():
                    self._discard_pool()  # idle, made by another thread: see _new_pool
                if self._pool is None:
                    self._pool = self._new_pool()
                broken = False
                # Workers are spawned on submit: they inherit the thread limits set here.
                with thread_env(self.threads):
                    while pending and len(in_flight) < self.workers:
                        i = pending[0]
                        if suspects & set(in_flight.values()) or (i in suspects and in_flight):
                            break  # a suspect runs alone, so a death there convicts it
                        try:
                            fut = self._pool.submit(fn, tasks[i])
                        except BrokenProcessPool:
                            broken = True  # a worker died since the last wait
                            break
                        pending.popleft()
                        in_flight[fut] = i
                        self._procs.update(getattr(self._pool, "_processes", None) or {})
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                running = list(in_flight.values())
                for fut in done:
                    i = in_flight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:  # noqa: BLE001 - e.g. a task that cannot be pickled
                        result = lost(tasks[i], f"{type(exc).__name__}: {exc}")
                    suspects.discard(i)
                    running.remove(i)
                    yield result
                if broken:
                    # Every future of a broken pool fails: requeue all that had not finished.
                    in_flight.clear()
                    self._discard_pool(terminate=True)  # nothing useful left in it
                    self._check_started()
                    for i in reversed(running):
                        if len(running) == 1:
                            deaths[i] += 1
                        if deaths[i] >= self.max_attempts:
                            suspects.discard(i)
                            yield lost(
                                tasks[i],
                                f"WorkerLost: the worker process died while running this case "
                                f"alone ({deaths[i]} times); it may have run out of memory or "
                                "been killed.",
                            )
                            continue
                        log.warning(
                            "a worker process died while task %d was running; rerunning it "
                            "on its own",
                            i,
                        )
                        suspects.add(i)
                        pending.appendleft(i)
            finished_cleanly = True
        finally:
            if not finished_cleanly:
                self._discard_pool(terminate=True)

    def _discard_pool(self, *, terminate: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if terminate:
            # Interrupted (Ctrl-C) or abandoned: do not wait for running cases. The
            # process table is private API, but the only way to stop running workers.
            procs: dict[Any, Any] = getattr(pool, "_processes", None) or {}
            for proc in list(procs.values()):
                if proc.is_alive():
                    proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Shut the worker processes down (idempotent)."""
        self._discard_pool()
