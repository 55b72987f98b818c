"""Run a pipeline on many cases: discovery, resume, executors, batch CSVs.

Usable from a notebook::

    from medsnowball.pipeline import run_batch

    summary = run_batch(["/data/archive"], "out/", workers=2, resume=True)
    print(summary.n_ok, summary.n_needs_review, summary.n_failed, summary.summary_csv)
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medsnowball.core.errors import ConfigError, NoSeriesFoundError
from medsnowball.core.quality import status_for
from medsnowball.pipeline.context import DeviceName, RunOptions, parse_formats
from medsnowball.pipeline.device import limit_threads, resolve_device
from medsnowball.pipeline.engine import DEFAULT_PIPELINE, Pipeline
from medsnowball.pipeline.executors import Executor, LocalExecutor, exit_if_spawn_bootstrap
from medsnowball.pipeline.outdir import OutputLock, check_output_folder
from medsnowball.pipeline.outputs import (
    LUNA16_CSV,
    SUMMARY_CSV,
    BatchFiles,
    CaseOutcome,
    clear_case_markers,
    flag_codes,
    read_outcome,
    remove_stale_temporaries,
    write_error,
    write_status,
)
from medsnowball.pipeline.quality import EXIT_NEEDS_REVIEW, case_flags
from medsnowball.pipeline.skipped import (
    EXIT_NOT_ANALYSED,
    SKIPPED_CSV,
    SkippedInput,
    skipped_inputs,
    write_skipped_csv,
)

if TYPE_CHECKING:  # pragma: no cover
    from medsnowball.io import CaseInput

__all__ = ["BatchSummary", "CaseTask", "ProgressEvent", "run_batch", "run_case_task"]

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class CaseTask:
    """Everything a worker needs for one case (small and picklable; no image data).

    Attributes:
        pipeline: The pipeline to run.
        case: The discovered input (paths, UIDs); the worker loads it itself.
        out_dir: Batch output folder; the case writes into ``out_dir/<case_id>``.
        options: Formats, device, patient-info flag (``out_dir`` is set per case).
        threads: Compute threads for this worker (``None`` = leave as is).
        log_level: Level of the ``medsnowball`` logger in worker processes that have no
            logging set up (``None`` = leave as is).
    """

    pipeline: Pipeline
    case: CaseInput
    out_dir: str
    options: RunOptions
    threads: int | None = None
    log_level: int | None = None


def _setup_worker_logging(level: int | None) -> None:
    """In a worker process without logging config, send medsnowball records to stderr."""
    import multiprocessing

    logger = logging.getLogger("medsnowball")
    if level is None or multiprocessing.parent_process() is None or logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [worker] %(message)s", datefmt="%H:%M:%S")
    )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


@dataclass(frozen=True)
class ProgressEvent:
    """Reported to the ``progress`` callback once at the start and after every case.

    Attributes:
        done: Cases finished so far (reused ones included).
        total: Cases in the batch.
        outcome: The case that just finished (``None`` for the start event).
    """

    done: int
    total: int
    outcome: CaseOutcome | None = None


@dataclass
class BatchSummary:
    """What a batch produced.

    Attributes:
        out_dir: Output folder.
        outcomes: One row per case, sorted by case id.
        seconds: Wall time of the batch.
        skipped_inputs: Series/files discovery did not turn into cases, with reasons
            (the rows of ``OUT/skipped.csv``).
    """

    out_dir: Path
    outcomes: list[CaseOutcome]
    seconds: float
    skipped_inputs: list[SkippedInput] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        """Cases that finished with status ``ok`` (rerun or reused)."""
        return sum(o.ok and not o.needs_review for o in self.outcomes)

    @property
    def n_needs_review(self) -> int:
        """Cases that finished with status ``needs_review`` (rerun or reused)."""
        return sum(o.needs_review for o in self.outcomes)

    @property
    def n_failed(self) -> int:
        """Cases that failed."""
        return sum(not o.ok for o in self.outcomes)

    @property
    def n_reused(self) -> int:
        """Cases found done by ``resume`` and not rerun."""
        return sum(o.reused for o in self.outcomes)

    @property
    def summary_csv(self) -> Path:
        """Path of summary.csv."""
        return self.out_dir / SUMMARY_CSV

    @property
    def candidates_csv(self) -> Path:
        """Path of luna16_candidates.csv."""
        return self.out_dir / LUNA16_CSV

    @property
    def n_not_analysed(self) -> int:
        """Skipped inputs that count as "not analysed" (corrupt, unreadable, incomplete)."""
        return sum(s.not_analysed for s in self.skipped_inputs)

    @property
    def skipped_csv(self) -> Path:
        """Path of skipped.csv."""
        return self.out_dir / SKIPPED_CSV

    @property
    def exit_code(self) -> int:
        """The CLI's exit status: 1 when a case failed, else 4 (:data:`EXIT_NOT_ANALYSED`)
        when some input was not analysed, else 3 (:data:`EXIT_NEEDS_REVIEW`) when a case
        needs review, else 0."""
        if self.n_failed:
            return 1
        if self.n_not_analysed:
            return EXIT_NOT_ANALYSED
        return EXIT_NEEDS_REVIEW if self.n_needs_review else 0


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_ERROR_CHARS else flat[: MAX_ERROR_CHARS - 3] + "..."


def run_case_task(task: CaseTask) -> CaseOutcome:
    """Run one case and write its files; never raises for a failing case.

    Runs in a worker process (or in-process). Clears the case's done markers, runs the
    pipeline into ``out_dir/<case_id>``, then writes ``status.json`` (and ``error.txt``
    with the traceback when the case failed).

    Args:
        task: The case and how to run it.

    Returns:
        The case's summary row.
    """
    if task.threads is not None:
        limit_threads(task.threads)
    _setup_worker_logging(task.log_level)
    case = task.case
    case_dir = Path(task.out_dir) / case.case_id
    series_uid = str(case.series_uid or case.luna_uid or "")
    t0 = time.perf_counter()
    clear_case_markers(case_dir)
    options = replace(task.options, out_dir=case_dir)
    ctx = None
    try:
        ctx = task.pipeline.make_context(case, options)
        task.pipeline.execute(ctx)
        seconds = time.perf_counter() - t0
        flags = case_flags(ctx)
        outcome = CaseOutcome(
            case_id=case.case_id,
            source=str(case.source),
            series_uid=str(ctx.series_uid or series_uid),
            status=status_for(flags),
            n_nodules=len(ctx.nodules),
            lung_rads=ctx.assessment.lung_rads if ctx.assessment is not None else "",
            seconds=seconds,
            flags=flag_codes(f.code for f in flags),
        )
    except Exception as exc:  # noqa: BLE001 - one failing case must not stop the batch
        seconds = time.perf_counter() - t0
        step = ctx.extra.get("failed_step") if ctx is not None else None
        where = f" in step '{step}'" if step else ""
        message = _one_line(f"{type(exc).__name__}{where}: {exc}")
        write_error(case_dir, f"case {case.case_id}{where}\n\n{traceback.format_exc()}")
        outcome = CaseOutcome(
            case_id=case.case_id,
            source=str(case.source),
            series_uid=series_uid,
            status="failed",
            error=message,
            seconds=seconds,
        )
    write_status(case_dir, outcome)
    return outcome


def _discover(inputs: Any, keep_names: bool) -> tuple[list[CaseInput], list[Any]]:
    """Turn paths, a CaseList or CaseInputs into (cases, the CaseLists found)."""
    if hasattr(inputs, "cases"):  # a CaseList
        return list(inputs.cases), [inputs]
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items = list(inputs)
    paths = [x for x in items if isinstance(x, (str, os.PathLike))]
    cases = [x for x in items if not isinstance(x, (str, os.PathLike))]
    lists: list[Any] = []
    if paths:
        from medsnowball.io import find_cases

        found = find_cases(paths, keep_names=keep_names)
        cases.extend(found.cases)
        lists.append(found)
    for c in cases:
        if not hasattr(c, "case_id") or not hasattr(c, "source"):
            raise ConfigError(
                f"run_batch inputs: expected paths or CaseInput objects, found {type(c).__name__}."
            )
    return cases, lists


def _outside(cases: list[CaseInput], out: Path) -> tuple[list[CaseInput], int]:
    """Drop cases read from inside the output folder (our own NIfTI masks, on a rerun)."""
    root = out.resolve()
    kept = [c for c in cases if not Path(c.source).resolve().is_relative_to(root)]
    return kept, len(cases) - len(kept)


def _resolve_pipeline(pipeline: Pipeline | str | os.PathLike[str] | None) -> Pipeline:
    if pipeline is None:
        return Pipeline.from_yaml(DEFAULT_PIPELINE)
    if isinstance(pipeline, Pipeline):
        return pipeline
    return Pipeline.from_yaml(pipeline)


def run_batch(
    inputs: Any,
    out_dir: str | os.PathLike[str],
    *,
    pipeline: Pipeline | str | os.PathLike[str] | None = None,
    workers: int = 1,
    resume: bool = False,
    formats: str | Sequence[str] | None = None,
    device: DeviceName = "auto",
    include_patient_info: bool = False,
    threshold: float | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    executor: Executor | None = None,
    keep_names: bool = False,
) -> BatchSummary:
    """Run a pipeline on every case found in ``inputs``; write per-case and batch outputs.

    One failing case is recorded (status ``failed``, ``"ExceptionType: message"``, the
    traceback in ``OUT/<case_id>/error.txt``) and the batch goes on. Inputs are only read.

    Args:
        inputs: A path, a list of paths (files or folders, searched recursively), a
            ``CaseList`` from :func:`medsnowball.io.find_cases`, or ``CaseInput`` objects.
        out_dir: Output folder (created).
        pipeline: A :class:`Pipeline`, a shipped pipeline name or a YAML path (default
            ``lung_nodule_screening``).
        workers: Cases processed in parallel (processes) by the default executor.
        resume: Skip cases whose findings.json exists and parses (status ok or
            needs_review); failed and unfinished cases are run again.
        formats: Output formats (e.g. ``"json,csv,nifti"``); default: the pipeline's.
        device: ``auto``, ``cpu`` or ``cuda`` for learned steps.
        include_patient_info: Patient fields in the HTML/PDF reports.
        threshold: Override the pipeline's operating threshold.
        progress: Called with a :class:`ProgressEvent` at the start and after each case.
        executor: Where to run (default ``LocalExecutor(workers)``; closed afterwards only
            when created here).
        keep_names: Case ids of image files from their sanitised file names instead of
            the pseudonymous ``img_<hash>`` (file names may hold patient data; see
            :func:`medsnowball.io.find_cases`). Only for paths in ``inputs``.

    Returns:
        The batch summary (also written to ``OUT/summary.csv``; the inputs discovery
        skipped to ``OUT/skipped.csv``, see :mod:`medsnowball.pipeline.skipped`).

    Raises:
        ConfigError: Invalid pipeline/options, duplicate case ids, ``cuda`` unavailable.
        NoSeriesFoundError: No CT case in ``inputs``.
    """
    t0 = time.perf_counter()
    pipe = _resolve_pipeline(pipeline)
    if threshold is not None:
        pipe = pipe.with_threshold(threshold)
    if not pipe.writes_outputs:
        raise ConfigError(
            f"pipeline {pipe.name!r} has no step that writes outputs (e.g. 'report'); "
            "run_batch needs one to record finished cases."
        )
    if workers < 1:
        raise ConfigError(f"workers: expected >= 1, found {workers}.")
    if workers > 1 and executor is None:
        # A spawn worker re-importing an unguarded script stops here, before discovery
        # or any output; the parent raises WorkerStartError with the fix.
        exit_if_spawn_bootstrap()
    if device == "cuda":
        resolve_device("cuda")  # fail early, before any case runs
    options = RunOptions(
        formats=parse_formats(
            formats if formats is None or isinstance(formats, str) else tuple(formats)
        ),
        include_patient_info=include_patient_info,
        device=device,
    )
    out = Path(out_dir)
    cases, lists = _discover(inputs, keep_names)
    skipped = [item for found in lists for item in skipped_inputs(found, out)]
    cases, ignored = _outside(cases, out)
    if ignored:
        log.info("ignored %d case(s) inside the output folder %s", ignored, out)
    if not cases:
        raise NoSeriesFoundError(
            "no CT case found in the inputs"
            + (
                f" ({len(skipped)} files/series skipped, e.g. {skipped[0].path}: "
                f"{skipped[0].reason})"
                if skipped
                else ""
            )
            + "; check the paths (run 'medsnowball info' to see what was found)."
        )
    dupes = sorted(i for i, n in Counter(c.case_id for c in cases).items() if n > 1)
    if dupes:
        raise ConfigError(f"case ids must be unique; repeated: {', '.join(dupes)}.")

    check_output_folder(out)
    with OutputLock(out):  # a second batch into OUT stops here
        write_skipped_csv(out / SKIPPED_CSV, skipped)
        n_lost = sum(s.not_analysed for s in skipped)
        if n_lost:
            log.warning("%d input(s) not analysed (corrupt, unreadable or incomplete); "
                        "see %s", n_lost, out / SKIPPED_CSV)  # fmt: skip
        files = BatchFiles(out, cases)
        todo: list[CaseInput] = []
        for case in sorted(cases, key=lambda c: c.case_id):
            if resume:
                prev = read_outcome(
                    out / case.case_id, case.case_id, str(case.source), str(case.series_uid or "")
                )
                if prev is not None and prev.ok:
                    remove_stale_temporaries(out / case.case_id)
                    files.outcomes[case.case_id] = replace(prev, reused=True)
                    continue
            todo.append(case)
        total = len(cases)
        done = len(files.outcomes)
        if files.outcomes:
            log.info("resume: %d of %d cases already done", done, total)
        if progress is not None:
            progress(ProgressEvent(done=done, total=total))

        own_executor = executor is None
        exe: Executor = executor if executor is not None else LocalExecutor(workers)
        threads = getattr(exe, "threads", None) if exe.workers > 1 else None
        level = logging.getLogger("medsnowball").getEffectiveLevel()
        tasks = [CaseTask(pipe, c, str(out), options, threads, level) for c in todo]

        def lost(task: CaseTask, reason: str) -> CaseOutcome:
            outcome = CaseOutcome(
                case_id=task.case.case_id,
                source=str(task.case.source),
                series_uid=str(task.case.series_uid or ""),
                status="failed",
                error=_one_line(reason),
            )
            write_status(out / task.case.case_id, outcome)
            return outcome

        results = exe.run(run_case_task, tasks, lost)
        try:
            for outcome in results:
                done += 1
                files.record(outcome)
                if outcome.ok:
                    flags = f" [{';'.join(outcome.flags)}]" if outcome.flags else ""
                    log.info("[%d/%d] %s %s (%.1f s)%s", done, total, outcome.case_id,
                             outcome.status, outcome.seconds, flags)  # fmt: skip
                else:
                    log.warning(
                        "[%d/%d] %s failed: %s (details in %s)",
                        done,
                        total,
                        outcome.case_id,
                        outcome.error,
                        out / outcome.case_id / "error.txt",
                    )
                if progress is not None:
                    progress(ProgressEvent(done=done, total=total, outcome=outcome))
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # on Ctrl-C: stop running workers now, not after their cases
            if own_executor:
                exe.close()
            final = files.finalize()
        return BatchSummary(
            out_dir=out, outcomes=final, seconds=time.perf_counter() - t0, skipped_inputs=skipped
        )
