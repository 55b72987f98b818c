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
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar, runtime_checkable

from medsnowball.pipeline.device import thread_env, threads_per_worker

__all__ = ["Executor", "LocalExecutor"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


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


class LocalExecutor:
    """Run cases on this machine: in-process (``workers=1``) or in worker processes.

    Worker processes are started with ``spawn`` (or ``forkserver``), never ``fork``: the
    parent may hold threads (progress bar, torch) that ``fork`` would copy half-way. At most
    ``workers`` tasks are in flight. When a worker dies (killed, out of memory) the pool
    breaks and every case that was in flight is rerun on its own, so the culprit is known
    for sure: a case whose worker dies while it runs alone ``max_attempts`` times is
    reported through ``lost``; innocent neighbours are never charged.

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
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)

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
                if self._pool is None:
                    self._pool = self._new_pool()
                # Workers are spawned on submit: they inherit the thread limits set here.
                with thread_env(self.threads):
                    while pending and len(in_flight) < self.workers:
                        i = pending[0]
                        if suspects & set(in_flight.values()) or (i in suspects and in_flight):
                            break  # a suspect runs alone, so a death there convicts it
                        pending.popleft()
                        in_flight[self._pool.submit(fn, tasks[i])] = i
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                running = list(in_flight.values())
                broken = False
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
