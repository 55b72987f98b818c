"""``medsnowball info``: which series were found under the inputs, which are analysed, why."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from medsnowball.cli.common import fail

__all__ = ["register"]


def _plain_table(rows: list[Any]) -> str:
    """Aligned plain-text table of ``SeriesRow`` objects (for pipes and logs)."""
    header = ("case", "study", "series", "description", "mod", "slices", "mm", "sel", "reason")
    lines = [header]
    for r in rows:
        uid = r.series_uid if len(r.series_uid) <= 24 else "..." + r.series_uid[-21:]
        lines.append(
            (
                r.case_id or "-",
                r.study,
                uid,
                (r.description or "-")[:24],
                r.modality,
                str(r.n_slices),
                f"{r.slice_thickness_mm:g}" if r.slice_thickness_mm else "?",
                "yes" if r.selected else "no",
                r.reason,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )


def register(app: typer.Typer) -> None:
    """Add ``info`` to the app."""

    @app.command("info")
    def info(
        inputs: Annotated[
            list[Path],
            typer.Argument(exists=True, help="CT files or folders.", show_default=False),
        ],
        as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
        show_files: Annotated[
            bool,
            typer.Option("--files", help="Also list files that are not images, with the reason."),
        ] = False,
    ) -> None:
        """List every series / image file under INPUT... and whether it becomes a case.

        One case per DICOM study (the series the selection rules prefer) and one per
        NIfTI / MetaImage / NRRD file. No patient names or IDs are shown.
        """
        from rich.console import Console
        from rich.table import Table

        from medsnowball.core.errors import MedsnowballError
        from medsnowball.io import find_cases

        try:
            found = find_cases([str(p) for p in inputs])
        except (MedsnowballError, OSError) as exc:
            fail(str(exc))
        console = Console(highlight=False)
        if as_json:
            payload = {
                "series": [asdict(r) for r in found.rows],
                "skipped_files": [{"path": p, "reason": r} for p, r in found.skipped_files],
            }
            console.out(json.dumps(payload, indent=2))
            return
        if not console.is_terminal:
            console.out(_plain_table(found.rows), highlight=False)
        else:
            table = Table(
                title=f"{len(found.cases)} case(s) selected from {len(found.rows)} series"
            )
            for col in ("case", "study", "series", "description", "mod", "slices", "mm"):
                table.add_column(col, overflow="fold")
            table.add_column("selected / reason", overflow="fold")
            for r in found.rows:
                uid = r.series_uid if len(r.series_uid) <= 20 else "…" + r.series_uid[-16:]
                mark = "[green]yes[/]" if r.selected else "[dim]no[/]"
                table.add_row(
                    r.case_id or "",
                    r.study,
                    uid,
                    r.description[:24],
                    r.modality,
                    str(r.n_slices),
                    f"{r.slice_thickness_mm:g}" if r.slice_thickness_mm else "?",
                    f"{mark} {r.reason}",
                )
            console.print(table)
        console.out(
            f"{len(found.cases)} case(s) selected from {len(found.rows)} series / image files.",
            highlight=False,
        )
        if found.skipped_files:
            if show_files:
                for path, reason in found.skipped_files:
                    console.print(f"  skipped {path}: {reason}", markup=False)
            else:
                console.print(
                    f"{len(found.skipped_files)} other file(s) are not CT images "
                    "(--files lists them)."
                )
        if not found.cases:
            raise typer.Exit(1)
