"""``medsnowball run``: analyse every CT case found under the inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from medsnowball.cli.common import (
    EXIT_INTERRUPTED,
    err_console,
    fail,
    setup_logging,
    stderr_is_tty,
)

__all__ = ["execute_batch", "register"]

DEVICES = ("auto", "cpu", "cuda")
EXECUTORS = ("local", "dask")


def execute_batch(
    inputs: list[Path],
    out: Path,
    *,
    pipeline: str,
    device: str,
    workers: int,
    resume: bool,
    formats: str | None,
    include_patient_info: bool,
    threshold: float | None,
    verbose: bool,
    quiet: bool,
    executor: str = "local",
    scheduler: str | None = None,
    tls_ca_file: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    keep_names: bool = False,
) -> int:
    """Run a batch the CLI way: logging, progress bar, summary; returns the exit code.

    Returns:
        The first that applies: 2 for usage errors (bad pipeline, options, no case
        found, an output folder that cannot be written or is in use by another run), 130
        when interrupted, 1 when some case failed, 4 when some input was not
        analysed (corrupt, unreadable or incomplete: ``OUT/skipped.csv``, column
        ``not_analysed``), 3 when some case needs review (a quality flag of severity
        "review"), else 0.
    """
    from medsnowball.core.errors import ConfigError
    from medsnowball.pipeline.outdir import OutputLock, check_output_folder

    # Before the log file exists: a bad --out is one clear line, exit 2, nothing written.
    try:
        lock = OutputLock(check_output_folder(out)).acquire()
    except ConfigError as exc:
        fail(str(exc))
    try:
        return _execute_batch(
            inputs,
            out,
            pipeline=pipeline,
            device=device,
            workers=workers,
            resume=resume,
            formats=formats,
            include_patient_info=include_patient_info,
            threshold=threshold,
            verbose=verbose,
            quiet=quiet,
            executor=executor,
            scheduler=scheduler,
            tls_ca_file=tls_ca_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
            keep_names=keep_names,
        )
    finally:
        lock.release()


def _execute_batch(
    inputs: list[Path],
    out: Path,
    *,
    pipeline: str,
    device: str,
    workers: int,
    resume: bool,
    formats: str | None,
    include_patient_info: bool,
    threshold: float | None,
    verbose: bool,
    quiet: bool,
    executor: str,
    scheduler: str | None,
    tls_ca_file: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    keep_names: bool,
) -> int:
    """:func:`execute_batch` once the output folder is checked and locked."""
    from medsnowball.core.errors import ConfigError, MedsnowballError, NoSeriesFoundError

    setup_logging(verbose=verbose, quiet=quiet, log_file=out / "medsnowball.log")
    if device not in DEVICES:
        fail(f"--device: expected one of {', '.join(DEVICES)}, found {device!r}.")
    if workers < 1:
        fail(f"--workers: expected >= 1, found {workers}.")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        fail(f"--threshold: expected a number in [0, 1], found {threshold}.")
    if executor not in EXECUTORS:
        fail(f"--executor: expected one of {', '.join(EXECUTORS)}, found {executor!r}.")
    if scheduler is not None and executor != "dask":
        fail("--scheduler needs --executor dask (the local executor runs on this machine).")

    from medsnowball.cli.progress import CaseProgress
    from medsnowball.pipeline import Pipeline, parse_formats, run_batch
    from medsnowball.pipeline.dask_executor import make_executor
    from medsnowball.pipeline.dask_security import make_security

    try:
        pipe = Pipeline.from_yaml(pipeline)
        fmt = parse_formats(formats)
    except ConfigError as exc:
        fail(str(exc))
    try:
        exe = make_executor(
            executor,  # type: ignore[arg-type]
            workers=workers,
            scheduler=scheduler,
            gpu=False if device == "cpu" else None,
            security=make_security(tls_ca_file, tls_cert, tls_key),
        )
    except MedsnowballError as exc:  # ConfigError, MissingDependencyError
        fail(str(exc))
    try:
        with CaseProgress(enabled=stderr_is_tty() and not quiet) as progress:
            summary = run_batch(
                [str(p) for p in inputs],
                out,
                pipeline=pipe,
                workers=workers,
                resume=resume,
                formats=fmt,
                device=device,  # type: ignore[arg-type]
                include_patient_info=include_patient_info,
                threshold=threshold,
                progress=progress,
                executor=exe,
                keep_names=keep_names,
            )
    except (ConfigError, NoSeriesFoundError, FileNotFoundError) as exc:
        fail(str(exc))
    except MedsnowballError as exc:
        fail(f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        err_console.print(
            "Interrupted. Finished cases are kept; rerun the same command with --resume."
        )
        return EXIT_INTERRUPTED
    finally:
        exe.close()  # stops the worker processes (a local Dask cluster's too)

    n_lost = summary.n_not_analysed
    n_other = len(summary.skipped_inputs) - n_lost
    if n_other and not quiet:
        err_console.print(
            f"{n_other} file(s)/series skipped as not CT or not needed (DICOMDIR, other "
            f"files, reformats, duplicates): listed in {escape(str(summary.skipped_csv))}.",
            highlight=False,
            soft_wrap=True,
        )
    if not quiet:
        reused = f", {summary.n_reused} reused (--resume)" if summary.n_reused else ""
        lost = f", {n_lost} inputs not analysed (skipped.csv)" if n_lost else ""
        colour = (
            "red" if summary.n_failed else "yellow" if summary.n_needs_review or n_lost else "green"
        )
        err_console.print(
            f"[{colour}]{summary.n_ok} ok, {summary.n_needs_review} need review, "
            f"{summary.n_failed} failed{lost}{reused}[/] in "
            f"{summary.seconds:.1f} s -> {escape(str(summary.summary_csv))}",
            highlight=False,
            soft_wrap=True,
        )
        for o in summary.outcomes:
            if not o.ok:
                err_console.print(
                    f"  [red]{o.case_id}[/]: {escape(o.error)}", highlight=False, soft_wrap=True
                )
            elif o.needs_review:
                err_console.print(
                    f"  [yellow]{o.case_id}[/]: needs review: {escape(', '.join(o.flags))}",
                    highlight=False,
                    soft_wrap=True,
                )
    return summary.exit_code


def register(app: typer.Typer) -> None:
    """Add ``run`` to the app."""

    @app.command("run")
    def run(
        inputs: Annotated[
            list[Path],
            typer.Argument(
                exists=True,
                help="CT files or folders (searched recursively: DICOM, NIfTI, MetaImage, NRRD).",
                show_default=False,
            ),
        ],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Output folder.", show_default=False)
        ],
        pipeline: Annotated[
            str,
            typer.Option(
                "--pipeline",
                "-p",
                help="Shipped pipeline name (lung_nodule_screening, lung_nodule_classical) "
                "or the path of a pipeline YAML file.",
            ),
        ] = "lung_nodule_screening",
        device: Annotated[
            str, typer.Option("--device", help="auto | cpu | cuda (for learned steps).")
        ] = "auto",
        workers: Annotated[
            int, typer.Option("--workers", "-j", help="Cases processed in parallel (processes).")
        ] = 1,
        resume: Annotated[
            bool,
            typer.Option("--resume", help="Skip cases already finished in OUT; rerun the others."),
        ] = False,
        formats: Annotated[
            str | None,
            typer.Option(
                "--formats",
                help="Comma-separated outputs: json,csv,nifti,html,pdf,seg,sr (default: the "
                "pipeline's; json is always written).",
                show_default=False,
            ),
        ] = None,
        include_patient_info: Annotated[
            bool,
            typer.Option(
                "--include-patient-info",
                help="Show patient name/ID/birth date in the HTML/PDF reports (off by default).",
            ),
        ] = False,
        threshold: Annotated[
            float | None,
            typer.Option(
                "--threshold",
                help="Operating threshold on candidate scores (default: the pipeline's).",
                show_default=False,
            ),
        ] = None,
        executor: Annotated[
            str,
            typer.Option(
                "--executor",
                help="Where cases run: local (this machine, --workers processes) or dask (a "
                "local Dask cluster of --workers processes, or the cluster at --scheduler; "
                "see docs/distributed.md).",
            ),
        ] = "local",
        scheduler: Annotated[
            str | None,
            typer.Option(
                "--scheduler",
                help="Address of a running Dask scheduler, e.g. tls://host:8786 with the "
                "--tls-* options, or tcp://host:8786 on a trusted network only (Dask sends "
                "pickles: the scheduler can run code here). With --executor dask.",
                show_default=False,
            ),
        ] = None,
        tls_ca_file: Annotated[
            Path | None,
            typer.Option(
                "--tls-ca-file",
                help="CA certificate (PEM) that signed the tls:// scheduler's certificate.",
                show_default=False,
            ),
        ] = None,
        tls_cert: Annotated[
            Path | None,
            typer.Option(
                "--tls-cert",
                help="This client's certificate (PEM) for the tls:// scheduler.",
                show_default=False,
            ),
        ] = None,
        tls_key: Annotated[
            Path | None,
            typer.Option(
                "--tls-key",
                help="Private key (PEM) of --tls-cert, when not in the same file.",
                show_default=False,
            ),
        ] = None,
        verbose: Annotated[
            bool, typer.Option("--verbose", "-v", help="Log per-step timings.")
        ] = False,
        keep_names: Annotated[
            bool,
            typer.Option(
                "--keep-names",
                help="Case ids of image files (NIfTI, MetaImage, NRRD) from their file names "
                "instead of img_<hash>. Only for files named without patient data (e.g. "
                "LUNA16 <seriesuid>.mhd). DICOM case ids are always ct_<hash>.",
            ),
        ] = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")
        ] = False,
    ) -> None:
        """Analyse every CT case under INPUT...: nodules, Lung-RADS, reports.

        Writes OUT/summary.csv, OUT/skipped.csv (inputs not turned into cases, with the
        reason), OUT/luna16_candidates.csv and OUT/<case_id>/ per case.

        Exit code (the first that applies): 2 usage error; 130 interrupted; 1 some case
        failed (summary.csv); 4 some input was not analysed: corrupt, unreadable or
        incomplete (skipped.csv, not_analysed = true); 3 some case needs review
        (summary.csv status needs_review, column warnings); 0 all ok.
        """
        code = execute_batch(
            inputs,
            out,
            pipeline=pipeline,
            device=device,
            workers=workers,
            resume=resume,
            formats=formats,
            include_patient_info=include_patient_info,
            threshold=threshold,
            verbose=verbose,
            quiet=quiet,
            executor=executor,
            scheduler=scheduler,
            tls_ca_file=tls_ca_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
            keep_names=keep_names,
        )
        raise typer.Exit(code)
