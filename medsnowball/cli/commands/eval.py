"""``medsnowball eval``: FROC, CPM and sensitivities of detections against a reference."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from medsnowball.cli.common import EXIT_FAILED, err_console, fail, setup_logging

if TYPE_CHECKING:  # pragma: no cover
    from medsnowball.evaluation import EvaluationReport

__all__ = ["register", "run_eval"]


def _fmt(v: float | None, spec: str = ".3f") -> str:
    import math

    return "-" if v is None or not math.isfinite(v) else format(v, spec)


def _print_report(report: EvaluationReport, written: dict[str, Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    fr = report.froc
    console = Console(highlight=False)
    ci = f" (95 % CI {_fmt(fr.cpm_ci[0])}-{_fmt(fr.cpm_ci[1])})" if fr.cpm_ci else ""
    console.print(
        f"[bold]CPM {_fmt(fr.cpm)}[/]{ci}: {fr.n_scans} scans, {fr.n_nodules} nodules, "
        f"{fr.n_detected} hit, {fr.n_false_positives} false positives"
    )
    ops = Table(title="FROC operating points")
    ops.add_column("FP/scan", justify="right")
    ops.add_column("sensitivity", justify="right")
    ops.add_column("threshold", justify="right")
    for i, (f, s) in enumerate(zip(fr.fp_rates, fr.sensitivities, strict=True)):
        ci_txt = ""
        if fr.sensitivities_ci is not None:
            lo, hi = fr.sensitivities_ci[i]
            ci_txt = f" [{_fmt(lo, '.2f')}, {_fmt(hi, '.2f')}]"
        ops.add_row(f"{f:g}", _fmt(s) + ci_txt, _fmt(fr.threshold_at(f), ".4g"))
    console.print(ops)
    groups = Table(
        title=f"By group (sensitivity at {report.fp_rate:g} FP/scan, threshold "
        f"{_fmt(report.threshold, '.4g')})"
    )
    for col in ("group", "n", "sensitivity", "CPM", "n seg", "Dice", "|dV| median"):
        groups.add_column(col, justify="left" if col == "group" else "right")
    rows = [("all", report.overall)] + [
        (f"{k}: {n}", g) for k, v in report.groups.items() for n, g in v.items()
    ]
    for name, g in rows:
        groups.add_row(
            name,
            str(g.n),
            _fmt(g.sensitivity),
            _fmt(g.cpm),
            str(g.n_segmented),
            _fmt(g.dice_mean),
            _fmt(g.volume_error_median_abs),
        )
    console.print(groups)
    for name, p in written.items():
        err_console.print(f"wrote {name}: {p}", highlight=False, soft_wrap=True)


def run_eval(
    predictions: Path,
    truth: Path,
    out: Path,
    *,
    excluded: Path | None = None,
    scans: Path | None = None,
    min_diameter_mm: float = 3.0,
    seg_min_diameter_mm: float = 5.0,
    fp_rate: float = 2.0,
    bootstrap: int = 1000,
    seed: int = 0,
    quiet: bool = False,
) -> int:
    """Evaluate, write froc.csv / froc.png / metrics.json, print the tables.

    Returns:
        0 on success (usage and input errors exit with 2 through :func:`fail`).
    """
    from medsnowball.core.errors import MedsnowballError
    from medsnowball.evaluation import (
        build_eval_cases,
        evaluate_cases,
        pair_cases,
        read_predictions,
        read_scan_list,
        read_truth,
        write_eval_outputs,
    )

    if bootstrap < 0:
        fail(f"--bootstrap: expected >= 0 samples, found {bootstrap}.")
    if fp_rate <= 0:
        fail(f"--fp-rate: expected a positive number of false positives per scan, found {fp_rate}.")
    try:
        preds = read_predictions(predictions)
        scan_ids = read_scan_list(scans) if scans is not None else []
        truth_cases = read_truth(truth, excluded, scan_ids)
        pairing = pair_cases(truth_cases, preds)
    except (FileNotFoundError, MedsnowballError) as exc:
        fail(str(exc))
    n_pred_scans = len(preds)
    lost = pairing.unmatched_predictions
    if lost and len(lost) == n_pred_scans:
        fail(
            f"none of the {n_pred_scans} predicted scan(s) in {predictions} is in the truth "
            f"{truth} (e.g. {lost[0].key!r}); the seriesuid column must name the truth's scans."
        )
    if lost:
        n_c = sum(len(p.predictions) for p in lost)
        shown = ", ".join(p.key for p in lost[:3]) + (", ..." if len(lost) > 3 else "")
        err_console.print(
            f"[yellow]Warning:[/] {len(lost)} of {n_pred_scans} predicted scan(s) ({n_c} "
            f"candidates) are not in the truth and were left out: {shown}",
            highlight=False,
            soft_wrap=True,
        )
    empty = [t.key for t, p in pairing.pairs if p is None]
    if empty and not quiet:
        err_console.print(
            f"[yellow]Note:[/] {len(empty)} truth scan(s) have no predictions and count as "
            "scans where nothing was detected.",
            highlight=False,
        )
    try:
        cases, notes = build_eval_cases(pairing)
        report = evaluate_cases(
            cases,
            min_diameter_mm=min_diameter_mm,
            seg_min_diameter_mm=seg_min_diameter_mm,
            fp_rate=fp_rate,
            n_bootstrap=bootstrap,
            seed=seed,
        )
    except MedsnowballError as exc:
        fail(f"{type(exc).__name__}: {exc}", code=EXIT_FAILED)
    for n in notes:
        err_console.print(f"[yellow]Note:[/] {n}", highlight=False, soft_wrap=True)
    inputs: dict[str, Any] = {
        "predictions": str(predictions),
        "truth": str(truth),
        "excluded": None if excluded is None else str(excluded),
        "scans": None if scans is None else str(scans),
        "min_diameter_mm": min_diameter_mm,
        "unmatched_prediction_scans": [p.key for p in lost],
        "truth_scans_without_predictions": empty,
    }
    try:
        written = write_eval_outputs(report, out, inputs=inputs, notes=[*notes, *_lost_notes(lost)])
    except OSError as exc:
        fail(f"cannot write the results to {out}: {exc}", code=EXIT_FAILED)
    if not quiet:
        _print_report(report, written)
    return 0


def _lost_notes(lost: Any) -> list[str]:
    return [f"{len(lost)} predicted scan(s) not in the truth were left out"] if lost else []


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the app."""

    @app.command("eval")
    def eval_command(
        predictions: Annotated[
            Path,
            typer.Argument(
                help="Output folder of 'medsnowball run' (its luna16_candidates.csv, "
                "findings.json and nodules.nii.gz) or a LUNA16 candidates CSV "
                "(seriesuid,coordX,coordY,coordZ,probability).",
                show_default=False,
            ),
        ],
        truth: Annotated[
            Path,
            typer.Option(
                "--truth",
                "-t",
                help="LUNA16 annotations.csv (seriesuid,coordX,coordY,coordZ,diameter_mm), a "
                "phantom truth.json, or a folder of truth JSON files.",
                show_default=False,
            ),
        ],
        out: Annotated[
            Path,
            typer.Option(
                "--out",
                "-o",
                help="Folder for froc.csv, froc.png, metrics.json.",
                show_default=False,
            ),
        ],
        excluded: Annotated[
            Path | None,
            typer.Option(
                "--excluded",
                help="LUNA16 annotations_excluded.csv: findings whose hits are ignored.",
                show_default=False,
            ),
        ] = None,
        scans: Annotated[
            Path | None,
            typer.Option(
                "--scans",
                help="List of the evaluated seriesuids (one per line, or a CSV with a "
                "seriesuid column): scans without nodules whose detections are false positives.",
                show_default=False,
            ),
        ] = None,
        min_diameter: Annotated[
            float,
            typer.Option(
                "--min-diameter", help="Reference nodules smaller than this (mm) are ignored."
            ),
        ] = 3.0,
        seg_min_diameter: Annotated[
            float,
            typer.Option(
                "--seg-min-diameter",
                help="Smallest reference diameter (mm) in the Dice / volume figures.",
            ),
        ] = 5.0,
        fp_rate: Annotated[
            float,
            typer.Option(
                "--fp-rate", help="Operating point (FP/scan) of the per-group sensitivities."
            ),
        ] = 2.0,
        bootstrap: Annotated[
            int,
            typer.Option("--bootstrap", help="Bootstrap samples over scans for the 95 % CIs."),
        ] = 1000,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")
        ] = False,
    ) -> None:
        """Score detections against a reference: FROC, CPM, sensitivities, Dice.

        Writes OUT/froc.csv, OUT/froc.png and OUT/metrics.json: the FROC curve, the CPM with
        a bootstrap 95 % CI, sensitivity by size band and type, and Dice and volume error
        per nodule when predicted and truth masks exist.

        Exit code 0: ok; 1: evaluation failed; 2: bad inputs (missing file, wrong CSV
        header, no predicted scan in the truth).
        """
        setup_logging(verbose=verbose, quiet=quiet)
        code = run_eval(
            predictions,
            truth,
            out,
            excluded=excluded,
            scans=scans,
            min_diameter_mm=min_diameter,
            seg_min_diameter_mm=seg_min_diameter,
            fp_rate=fp_rate,
            bootstrap=bootstrap,
            seed=seed,
            quiet=quiet,
        )
        raise typer.Exit(code)
