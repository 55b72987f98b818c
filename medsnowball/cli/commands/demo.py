"""``medsnowball demo``: run the default pipeline on the sample data shipped in the repo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medsnowball.cli.common import err_console, fail

__all__ = ["find_sample_data", "register"]


def find_sample_data() -> Path | None:
    """The repository's ``sample_data/`` folder next to the package (editable installs)."""
    import medsnowball

    candidate = Path(medsnowball.__file__).resolve().parents[1] / "sample_data"
    if candidate.is_dir() and any(candidate.iterdir()):
        return candidate
    return None


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the app."""

    @app.command("demo")
    def demo(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
            "medsnowball-demo"
        ),
        data: Annotated[
            Path | None,
            typer.Option(
                "--data",
                exists=True,
                help="Sample data folder (default: the repository's sample_data/).",
                show_default=False,
            ),
        ] = None,
        workers: Annotated[int, typer.Option("--workers", "-j", help="Cases in parallel.")] = 1,
        formats: Annotated[
            str | None,
            typer.Option("--formats", help="Outputs (default: all).", show_default=False),
        ] = None,
        device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")] = "auto",
    ) -> None:
        """Run the default pipeline on the sample CT scans and point at the reports."""
        from medsnowball.cli.commands.run import execute_batch

        folder = data or find_sample_data()
        if data is None and folder is not None and (folder / "dicom").is_dir():
            folder = folder / "dicom"  # the CT only; the *_truth.nii.gz files are label maps
        if folder is None:
            fail(
                "sample data not found next to the package (non-editable install?); "
                "pass --data PATH (a folder of CT scans, e.g. sample_data/ of a checkout)."
            )
        err_console.print(f"demo: {folder} -> {out}", highlight=False)
        code = execute_batch(
            [folder],
            out,
            pipeline="lung_nodule_screening",
            device=device,
            workers=workers,
            resume=False,
            formats=formats,
            include_patient_info=False,
            threshold=None,
            verbose=False,
            quiet=False,
        )
        reports = sorted(out.glob("*/report.html"))
        for report in reports:
            err_console.print(f"report: {report}", highlight=False)
        raise typer.Exit(code)
