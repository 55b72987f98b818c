"""Progress over the cases of a batch: a rich bar on a terminal, nothing extra otherwise.

Without a terminal the batch's own log lines (``[3/10] case ok (12.1 s)``) are the progress
report, which suits CI logs and ``nohup`` runs.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from medsnowball.cli.common import err_console

if TYPE_CHECKING:  # pragma: no cover
    from rich.progress import Progress, TaskID

    from medsnowball.pipeline.batch import ProgressEvent

__all__ = ["CaseProgress"]


class CaseProgress:
    """Callable progress sink for :func:`medsnowball.pipeline.run_batch`.

    Args:
        enabled: Draw a bar (use on a terminal only).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.n_ok = 0
        self.n_failed = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> CaseProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]cases"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=err_console,
            )
            self._progress.start()
            self._task = self._progress.add_task("cases", total=None, status="")
        return self

    def __call__(self, event: ProgressEvent) -> None:
        """Update the bar with a batch event."""
        if event.outcome is not None and not event.outcome.reused:
            if event.outcome.ok:
                self.n_ok += 1
            else:
                self.n_failed += 1
        if self._progress is not None and self._task is not None:
            status = f"[green]{self.n_ok} ok[/]"
            if self.n_failed:
                status += f" [red]{self.n_failed} failed[/]"
            self._progress.update(
                self._task, total=event.total, completed=event.done, status=status
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
